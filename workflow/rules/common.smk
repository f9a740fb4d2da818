# Validation and wiring only: the work happens in the vad_pipeline package.
import functools
import json
import shlex
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

sys.path.insert(0, workflow.basedir)  # the package, also when it is not installed
from vad_pipeline import ablation as vabl  # noqa: E402
from vad_pipeline import cells as vcells  # noqa: E402
from vad_pipeline import config as vconf  # noqa: E402
from vad_pipeline import datasets as vdata  # noqa: E402
from vad_pipeline.io import VadError  # noqa: E402

# --config reads nested values as strings ('cells={"frames": 16}' gives "16"): convert those the schema types
vconf.coerce_strings(config)
validate(config, schema="../schemas/config.schema.yaml")
try:
    RESOLVED = {name: vconf.resolve(config, name) for name in config["datasets"]}
except VadError as exc:
    raise WorkflowError(str(exc))

# Rules call the package's CLI; PYTHONPATH makes it work in any env that has the dependencies.
# Every argument of a rule's command is quoted (:q, shlex.quote here): a checkout path with a
# space or a video named '01 a;touch x' is passed as one argument and never runs as a command.
VAD = f"PYTHONPATH={shlex.quote(workflow.basedir)}${{PYTHONPATH:+:$PYTHONPATH}} python -m vad_pipeline"
ENVS = f"{workflow.basedir}/envs"

# Every job gets a scratch folder under $TMPDIR (Snakemake sets it from resources.tmpdir, evaluated
# on the node that runs the job) for the caches libraries would otherwise write to $HOME or beside
# the code (matplotlib's font cache, torch hub and compile caches, bytecode); it is removed when
# the job ends. So on a shared file system a job writes nothing but its declared outputs, logs and
# benchmarks (outputs go to a temporary file beside the output first, then are renamed; train also
# keeps its resume state in results/<dataset>/train/ckpt/). HDF5 file locking is off: every HDF5
# file has one writer (its rule), and locking fails on some network file systems.
shell.prefix(
    "set -euo pipefail; "
    'VAD_JOB_TMP="$(mktemp -d "${{TMPDIR:-/tmp}}/vad-job.XXXXXX")"; '
    """trap 'rm -rf "$VAD_JOB_TMP"' EXIT; """
    'export MPLCONFIGDIR="$VAD_JOB_TMP/matplotlib" XDG_CACHE_HOME="$VAD_JOB_TMP/cache" '
    'TORCH_HOME="$VAD_JOB_TMP/torch" TORCHINDUCTOR_CACHE_DIR="$VAD_JOB_TMP/inductor" '
    'TRITON_CACHE_DIR="$VAD_JOB_TMP/triton" PYTHONDONTWRITEBYTECODE=1 HDF5_USE_FILE_LOCKING=FALSE; '
)


wildcard_constraints:
    dataset="|".join(RESOLVED),
    split="train|test",
    video="[^/]+",


@functools.cache
def variant_config(dataset, variant):
    """The dataset's settings with an ablation variant's overrides applied last (ablation.smk)."""
    try:
        return vconf.resolve(config, dataset, config["ablation"][variant]["overrides"])
    except VadError as exc:
        raise WorkflowError(f"ablation variant {variant}: {exc}")


def job_config(wildcards):
    """A job's resolved settings: its dataset's, or with a {variant} wildcard that variant's."""
    if "variant" in wildcards.keys():
        return variant_config(wildcards.dataset, wildcards.variant)
    return RESOLVED[wildcards.dataset]


def params_json(*sections, extra=None, only=None):
    """The resolved settings a stage depends on, as JSON: a change reruns that stage only (``only``:
    {section: keys} where a stage reads part of a section). Rules reused for the ablation variants
    (ablation.smk) get the variant's settings the same way."""

    def fn(wildcards):
        cfg = job_config(wildcards)
        p = vconf.stage_params(cfg, *sections, only=only)
        if extra:
            p.update(extra(cfg))
        return json.dumps(p, sort_keys=True)

    return fn


def video_names(dataset, split):
    try:
        return vdata.video_names(RESOLVED[dataset], split)
    except VadError as exc:
        raise WorkflowError(str(exc))


# Where a dataset lives is not what its results depend on: moving or remounting it must not redo
# hours of detection, flow and training. So the stages' params leave dataset.root out
# (config.stage_params), and the stages that open videos read it from results/<d>/dataset_root.txt
# (written by the dataset_root job), an ancient input. A dataset's own files are not inputs at all: a copy, a
# restore or a remount gives them new timestamps and paths without new content. After really
# changing a video, rerun its stages: snakemake -R detect flow (README, Rerunning). The generated
# demo is the exception: it is make_demo's output, so regenerating it reruns everything.
ROOT_FILE = "results/{dataset}/dataset_root.txt"


def dataset_input(wildcards):
    """What a stage that opens videos reads (with unpack): the dataset's root file, passed as
    --root @{input.root:q}, and the generated demo."""
    cfg = RESOLVED[wildcards.dataset]
    demo = [cfg["dataset"]["root"]] if cfg["dataset"]["layout"] == "demo" else []
    return {"root": ancient(ROOT_FILE.format(dataset=wildcards.dataset)), "demo": demo}


# Backends that run a network: their weight file is an input (a new file reruns the stage) and
# their jobs ask for a GPU (resources.gpu, which the cluster profiles map to the scheduler's).
NETWORK_BACKENDS = {"detect": ("mmdet",), "flow": ("flownet2", "raft")}


def _backend(wildcards, stage):
    sec = job_config(wildcards)[stage]
    return sec["backend"], sec.get(sec["backend"], {})


def weights_input(stage):
    """The local weight file of the stage's backend (none for the weight-free ones)."""

    def fn(wildcards):
        name, p = _backend(wildcards, stage)
        return [p["checkpoint"]] if name in NETWORK_BACKENDS[stage] and p.get("checkpoint") else []

    return fn


def gpu_request(stage):
    def fn(wildcards):
        name, p = _backend(wildcards, stage)
        return int(name in NETWORK_BACKENDS[stage] and p.get("device", "auto") != "cpu")

    return fn


def detect_env(wildcards):
    """MMDetection brings its own stack (mmcv is built for one torch); the rest share vision.yaml."""
    name, _ = _backend(wildcards, "detect")
    return f"{ENVS}/mmdet.yaml" if name == "mmdet" else f"{ENVS}/vision.yaml"


def per_video(pattern, split=None):
    """Every video of the job's split (or of ``split``)."""

    def fn(wildcards):
        s = split or wildcards.split
        return expand(pattern, dataset=wildcards.dataset, split=s, video=video_names(wildcards.dataset, s))

    return fn


# Ablation variants (ablation.smk)


@functools.cache
def trained_by(dataset):
    try:
        return vabl.trained_by(config, dataset)
    except VadError as exc:
        raise WorkflowError(f"ablation: {exc}")


def variant_model(wildcards):
    """The model a variant is inferred with: its own, or that of the earlier variant it coincides
    with on this dataset (same training settings: trained once)."""
    owner = trained_by(wildcards.dataset)[wildcards.variant]
    return f"{vabl.variant_dir('results', wildcards.dataset, owner)}/train/model.pt"


def localisation_input(name):
    """results/{dataset}/<name> of the localisation rule where the dataset has pixel masks
    (nothing to compute elsewhere)."""

    def fn(wildcards):
        try:
            masks = vdata.has_pixel_masks(RESOLVED[wildcards.dataset])
        except VadError as exc:
            raise WorkflowError(str(exc))
        return [f"results/{wildcards.dataset}/{name}"] if masks else []

    return fn


def evaluate_extras(wildcards, input):
    """Optional evaluate arguments from the inputs the rule has (ablation variants have none)."""
    names = input.keys()
    figures = [input[k] for k in ("pictures", "loc_plot", "loss") if k in names and input[k]]
    return [*(["--localisation", input.loc] if "loc" in names and input.loc else []),
            *(["--benchmark", input.bench] if "bench" in names else []),
            *(["--figures", *figures] if figures else [])]
