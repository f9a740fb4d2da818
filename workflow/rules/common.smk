# Validation and wiring only: the work happens in the vad_pipeline package.
import functools
import json
import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

sys.path.insert(0, workflow.basedir)  # the package, also when it is not installed
from vad_pipeline import ablation as A  # noqa: E402
from vad_pipeline import apply as AP  # noqa: E402
from vad_pipeline import bundle as B  # noqa: E402
from vad_pipeline import windows as W  # noqa: E402
from vad_pipeline import config as C  # noqa: E402
from vad_pipeline.datasets import cameras as K  # noqa: E402
from vad_pipeline import datasets as D  # noqa: E402
from vad_pipeline.datasets import holdout as HO  # noqa: E402
from vad_pipeline.io import VadError, atomic_path  # noqa: E402

# --config reads nested values as strings ('cells={"frames": 16}' gives "16"): convert those the schema types
C.coerce_strings(config)
validate(config, schema="../schemas/config.schema.yaml")
try:
    RESOLVED = {name: C.resolve(config, name) for name in config["datasets"]}
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
        return C.resolve(config, dataset, config["ablation"][variant]["overrides"])
    except VadError as exc:
        raise WorkflowError(f"ablation variant {variant}: {exc}")


def job_config(wildcards):
    """A job's resolved settings: its dataset's, or with a {variant} wildcard that variant's."""
    if "variant" in wildcards.keys():
        return variant_config(wildcards.dataset, wildcards.variant)
    return RESOLVED[wildcards.dataset]


def params_json(*sections, extra=None, only=None):
    """The resolved settings a stage depends on, as JSON: a change reruns that stage only (``only``:
    {section: keys} where a stage reads part of a section, or a function of the settings giving
    them). Rules reused for the ablation variants
    (ablation.smk) get the variant's settings the same way."""

    def fn(wildcards):
        cfg = job_config(wildcards)
        p = C.stage_params(cfg, *sections, only=only(cfg) if callable(only) else only)
        if extra:
            p.update(extra(cfg))
        return json.dumps(p, sort_keys=True)

    return fn


def holdout_keys(cfg):
    """``only``'s validation keys of a stage that lists a training split: those that decide what
    it holds out (HO.keys: the time blocks' only where a camera is too small for whole videos)."""
    try:
        return HO.keys(cfg, D.training_cameras(cfg))
    except VadError as exc:
        raise WorkflowError(str(exc))


def video_names(dataset, split):
    try:
        return D.video_names(RESOLVED[dataset], split)
    except VadError as exc:
        raise WorkflowError(str(exc))


# Where a dataset lives is not what its results depend on: moving or remounting it must not redo
# hours of detection, flow and training. So the stages' params leave dataset.root out
# (config.stage_params), and the stages that open videos read it from results/<d>/dataset_root.txt
# (--root @{params.root:q}): a file whose path is the param, so a new root reruns nothing. It is
# written whenever the root differs from what it holds, by the process that evaluates a job's
# params (Snakemake's, locally; the job's own on a cluster), not by a job: a job rewriting it made,
# in Snakemake (9.x, dag.py update_needrun), every job downstream of it "masked", and a masked job
# reached only through ancient inputs was never checked itself, so a new root hid every other
# change (new videos, new settings) from that run and the next run found them. Nor is it an
# input: Snakemake lists a folder's files once while it builds the DAG, so a file written then
# may be missing to it. What a stage does depend on is its videos: rules that read one video
# carry that video's fingerprint as a param, rules that read a split's list of videos the
# fingerprints of the split (videos_param), labels also the ground truth's (gt_param), the rules
# that read pixel masks their content (masks_param), cameras the rows of cameras.csv. A video
# added, removed, renamed or replaced reruns exactly what depends on it, in the same run; a copy,
# a restore or a remount (same names and sizes, new paths and timestamps) reruns nothing. A frame
# edited in place at the very same size (a pixel mask fixed, a frame or a video re-encoded) is
# seen too: every file is tracked by content under the default dataset.fingerprint (videos
# also by sample or size, if set), each read once: its hash is kept in HASHES and reused while
# the file's stat (size, times, inode) is unchanged, so a warm dry run only stats the files
# (vad_pipeline.hashcache; saved when Snakemake exits). The generated demo is the exception: it is
# make_demo's output, so regenerating it reruns everything.
ROOT_FILE = "results/{dataset}/dataset_root.txt"
HASHES = "results/.hashes/{dataset}.json"


@functools.cache
def root_file(dataset):
    """results/<dataset>/dataset_root.txt, (re)written when the dataset's root differs from it."""
    cfg = RESOLVED[dataset]
    if cfg["dataset"]["layout"] != "demo":   # (the demo's is make_demo's output)
        try:
            D.root_of(cfg)
        except VadError as exc:
            raise WorkflowError(str(exc))
    path = Path(ROOT_FILE.format(dataset=dataset))
    text = f"{cfg['dataset']['root']}\n"
    if not path.is_file() or path.read_text() != text:
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    return str(path)


def root_param(wildcards):
    """Params entry of a stage that opens videos: the dataset's root file (root_file), passed as
    --root @{params.root:q}."""
    return root_file(wildcards.dataset)


def dataset_input(wildcards):
    """What a stage that opens videos takes as input (with unpack): the generated demo."""
    cfg = RESOLVED[wildcards.dataset]
    return {"demo": [cfg["dataset"]["root"]] if cfg["dataset"]["layout"] == "demo" else []}


@functools.cache
def _sources(dataset, split):
    try:
        return D.video_sources(RESOLVED[dataset], split)
    except VadError as exc:
        raise WorkflowError(str(exc))


@functools.cache
def _fingerprint(dataset, split, video):
    """One video's fingerprint (D.fingerprint), computed once per Snakemake process: a job
    that reads one video (a cluster job) stats only that video's files, a split's list reuses
    them. None for the generated demo (make_demo's output: regenerating it reruns everything)."""
    if RESOLVED[dataset]["dataset"]["layout"] == "demo":
        return None
    sources = _sources(dataset, split)
    if video not in sources:
        raise WorkflowError(f"dataset {dataset}: no {split} video {video!r} (have {', '.join(sources)})")
    try:
        return D.fingerprint(sources[video], D.fingerprint_mode(RESOLVED[dataset]), HASHES.format(dataset=dataset))
    except VadError as exc:
        raise WorkflowError(str(exc))


def videos_param(split=None, cameras=False):
    """Params entry of what the job's videos are (D.fingerprint): with a {video} wildcard
    that video's fingerprint, else {video: fingerprint} of the job's split (or of ``split``).
    ``cameras``: where cameras.csv assigns the cameras, {video: [fingerprint, its cameras there]}
    (D.camera_fingerprints): the split's rows of the file, so that a test video moved to
    another camera reruns the test side and not the training one; other modes as without."""

    def fn(wildcards):
        d, s = wildcards.dataset, split or wildcards.split
        if "video" in wildcards.keys():
            return _fingerprint(d, s, wildcards.video)
        fps = {v: _fingerprint(d, s, v) for v in _sources(d, s)}
        try:
            cams = D.camera_fingerprints(RESOLVED[d], s) if cameras else None
        except VadError as exc:
            raise WorkflowError(str(exc))
        return json.dumps({v: [fp, cams[v]] for v, fp in fps.items()} if cams is not None else fps)

    return fn


def gt_param(wildcards):
    """Params entry of the frame ground truth's content (D.gt_fingerprint)."""
    try:
        return D.gt_fingerprint(RESOLVED[wildcards.dataset], HASHES.format(dataset=wildcards.dataset)) or ""
    except VadError as exc:
        raise WorkflowError(str(exc))


@functools.cache
def _masks(dataset):
    try:
        return D.mask_fingerprint(RESOLVED[dataset], HASHES.format(dataset=dataset)) or ""
    except VadError as exc:
        raise WorkflowError(str(exc))


def masks_param(wildcards):
    """Params entry of the pixel masks' content (D.mask_fingerprint) of the rules that read
    them (labels counts them, localisation scores against them, pictures draws them); hashed once
    per Snakemake process."""
    return _masks(wildcards.dataset)


# Backends that run a network: their weight file (and mmdet's config file) is an input (a new
# file reruns the stage) and their jobs ask for a GPU (resources.gpu, which the cluster profiles
# map to the scheduler's).
NETWORK_BACKENDS = {"detect": ("mmdet",), "flow": ("flownet2", "raft")}


def _backend(wildcards, stage):
    sec = job_config(wildcards)[stage]
    return sec["backend"], sec.get(sec["backend"], {})


def weights_input(stage):
    """The local weight file of the stage's backend (none for the weight-free ones), and the
    config file it is built from where one is set (detect.mmdet.config): both are read by the job."""

    def fn(wildcards):
        name, p = _backend(wildcards, stage)
        return [p[k] for k in ("checkpoint", "config") if p.get(k)] if name in NETWORK_BACKENDS[stage] else []

    return fn


def gpu_request(stage):
    def fn(wildcards):
        name, p = _backend(wildcards, stage)
        return int(name in NETWORK_BACKENDS[stage] and p["device"] != "cpu")

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


def term_parts(term, pattern):
    """Input of a weight-free term's gather (gather_motion_terms for ``motion``, S_m;
    gather_cell_terms for ``cells``, S_c): ``pattern`` of each of its part jobs, one per camera
    where the term's reference is per camera and there are several (cameras.motion,
    cameras.cells; else one, 'all'), S_c's also per band of rows of windows (cells.jobs). The
    cameras come from the videos' names (K.video_cameras), so the jobs are known before any
    job runs."""
    from vad_pipeline import object_motion as M

    def fn(wildcards):
        cfg = RESOLVED[wildcards.dataset]
        try:
            cams = {**K.video_cameras(cfg, "train"), **K.video_cameras(cfg, "test")}
        except VadError as exc:
            raise WorkflowError(str(exc))
        if term == "cells":
            return [pattern.format(dataset=wildcards.dataset, camera=c, band=b) for c, b in W.jobs(cfg, cams)]
        return [pattern.format(dataset=wildcards.dataset, camera=c) for c in M.jobs(cfg, cams)]

    return fn


# Ablation variants (ablation.smk)


@functools.cache
def trained_by(dataset):
    try:
        return A.trained_by(config, dataset)
    except VadError as exc:
        raise WorkflowError(f"ablation: {exc}")


def variant_model(wildcards):
    """The model a variant is inferred with: its own, or that of the earlier variant it coincides
    with on this dataset (same training settings: trained once)."""
    owner = trained_by(wildcards.dataset)[wildcards.variant]
    return f"{A.variant_dir('results', wildcards.dataset, owner)}/train/model.pt"


def localisation_input(name):
    """results/{dataset}/<name> of the localisation rule where the dataset has pixel masks
    (nothing to compute elsewhere)."""

    def fn(wildcards):
        try:
            masks = D.has_pixel_masks(RESOLVED[wildcards.dataset])
        except VadError as exc:
            raise WorkflowError(str(exc))
        return [f"results/{wildcards.dataset}/{name}"] if masks else []

    return fn


def evaluate_extras(wildcards, input):
    """Optional evaluate arguments from the inputs the rule has (ablation variants have none)."""
    names = input.keys()
    figures = [input[k] for k in ("pictures", "loc_plot", "loss") if k in names and input[k]]
    return [*(["--localisation", input.loc] if "loc" in names and input.loc else []),
            *(["--validation", input.validation] if "validation" in names and input.validation else []),
            *(["--benchmark", input.bench] if "bench" in names else []),
            *(["--figures", *figures] if figures else [])]


# The label-free validation (validation.smk)


@functools.cache
def held_out(dataset):
    return video_names(dataset, "holdout")


def validation_input(wildcards):
    """The validation's weights.json (its table) where the dataset holds videos out, whatever
    score.weights: auc.json and the summary page show it."""
    return [f"results/{wildcards.dataset}/validation/weights.json"] if held_out(wildcards.dataset) else []


def fusion_weights_input(wildcards):
    """validation_input where the dataset's weights are chosen on it (score.weights: auto); else
    nothing (the fixed weights)."""
    return validation_input(wildcards) if RESOLVED[wildcards.dataset]["score"]["weights"] == "auto" else []


def weights_arg(wildcards, input):
    return ["--weights", input.weights] if "weights" in input.keys() and input.weights else []


# Applying a trained dataset to batches of new footage (apply.smk)


def _apply_error(dataset, batch, exc):
    return WorkflowError(f"dataset {dataset}" + (f", batch {batch}" if batch else "") + f": {exc}")


@functools.cache
def external_bundle(dataset):
    """(path, manifest) of the bundle a dataset is applied with from elsewhere (datasets.<d>.bundle),
    checked (found, this version's format, every file there); None: the dataset's own training."""
    path = RESOLVED[dataset]["dataset"].get("bundle")
    if not path:
        return None
    try:
        return path, B.manifest(path)
    except VadError as exc:
        raise _apply_error(dataset, None, exc)


def _own_or_external(own):
    """A wildcard constraint: the datasets with (own=False) or without (own=True) a bundle from elsewhere."""
    names = [d for d in RESOLVED if bool(RESOLVED[d]["dataset"].get("bundle")) != own]
    return "|".join(names) if names else "(?!)"


@functools.cache
def batch_spec(dataset, batch):
    batches = RESOLVED[dataset]["dataset"].get("apply") or {}
    if batch not in batches:
        raise WorkflowError(f"dataset {dataset}: no batch {batch!r} under datasets.{dataset}.apply "
                            f"(have {', '.join(batches) or 'none'})")
    return batches[batch]


@functools.cache
def trained(dataset):
    """(what apply.assign and apply.check_size read of the bundle, {training video: camera}) before
    any job runs: the external bundle's manifest, or the dataset's own cameras (frame sizes once
    its window layout exists)."""
    ext = external_bundle(dataset)
    try:
        if ext:
            return ext[1], B.train_cameras(ext[0])
        cfg = RESOLVED[dataset]
        train_cams = K.video_cameras(cfg, "train")
        layout = Path(f"results/{dataset}/cells/layout.json")
        per = W.read_layout(str(layout))["cameras"] if layout.is_file() else {}
        cams = {c: {"frame_size": (per.get(c) or per.get(K.ONE) or {}).get("frame_size")}
                for c in sorted(set(train_cams.values()))}
        return {"dataset": dataset, "camera_assign": K.mode(cfg), "cameras": cams}, train_cams
    except VadError as exc:
        raise _apply_error(dataset, None, exc)


def batch_config(dataset, batch):
    """The batch's settings as far as reading its videos goes (the bundle's are the job's)."""
    ext = external_bundle(dataset)
    settings = B.settings(ext[0]) if ext else B.settings_of(RESOLVED[dataset])
    return AP.batch_config(settings, dataset, batch, batch_spec(dataset, batch))


@functools.cache
def batch_sources(dataset, batch):
    """{video: file or frame folder} of a batch, listed once per Snakemake process."""
    try:
        return AP.sources(batch_spec(dataset, batch)["root"])
    except VadError as exc:
        raise _apply_error(dataset, batch, exc)


@functools.cache
def batch_plan(dataset, batch):
    """{video: camera} of a batch, in the batch's order: every video assigned one of the trained
    cameras and, where the camera's frame size is known, of that size; else an error naming the
    video, before any job runs."""
    spec = batch_spec(dataset, batch)
    info, train_cams = trained(dataset)
    names = list(batch_sources(dataset, batch))
    try:
        cams = AP.assign(info, names, spec["root"], train_cams)
        cfg = batch_config(dataset, batch)
        for name, cam in cams.items():
            if info["cameras"][cam].get("frame_size"):
                AP.check_size(info, D.get_video(cfg, "test", name), cam, int(cfg["dataset"]["work_height"]))
    except VadError as exc:
        raise _apply_error(dataset, batch, exc)
    return cams


@functools.cache
def batch_root_file(dataset, batch):
    """results/<d>/apply/<batch>/root.txt, (re)written when the batch's root differs from it: where
    a batch lives is not what its results depend on (as root_file; its videos' fingerprints are)."""
    path = Path(f"results/{dataset}/apply/{batch}/root.txt")
    text = f"{batch_spec(dataset, batch)['root']}\n"
    if not path.is_file() or path.read_text() != text:
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    return str(path)


@functools.cache
def _batch_fingerprint(dataset, batch, video):
    """One batch video's fingerprint (D.fingerprint, as the dataset's videos are tracked)."""
    sources = batch_sources(dataset, batch)
    if video not in sources:
        raise WorkflowError(f"dataset {dataset}, batch {batch}: no video {video!r} (have {', '.join(sources)})")
    try:
        return D.fingerprint(sources[video], RESOLVED[dataset]["dataset"]["fingerprint"], HASHES.format(dataset=dataset))
    except VadError as exc:
        raise _apply_error(dataset, batch, exc)


def batch_labels_param(wildcards):
    """The content of the batch's labels.csv (none: unlabelled)."""
    path = Path(batch_spec(wildcards.dataset, wildcards.batch)["root"]) / AP.LABELS_CSV
    return B.checksum(path) if path.is_file() else ""


def batch_spec_json(wildcards):
    spec = batch_spec(wildcards.dataset, wildcards.batch)
    return json.dumps({k: v for k, v in spec.items() if k != "root"}, sort_keys=True)


def bundle_dir(wildcards):
    return f"results/{wildcards.dataset}/bundle"


def batch_parts(wildcards):
    return expand("results/{dataset}/apply/{batch}/videos/{video}/{piece}", dataset=wildcards.dataset,
                  batch=wildcards.batch, video=list(batch_plan(wildcards.dataset, wildcards.batch)), piece=AP.PIECES)
