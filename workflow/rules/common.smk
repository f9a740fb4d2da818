# Validation and wiring only: the work happens in the vad_pipeline package.
import json
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

sys.path.insert(0, workflow.basedir)  # the package, also when it is not installed
from vad_pipeline import config as vconf  # noqa: E402
from vad_pipeline import datasets as vdata  # noqa: E402
from vad_pipeline.io import VadError  # noqa: E402

validate(config, schema="../schemas/config.schema.yaml")
try:
    RESOLVED = {name: vconf.resolve(config, name) for name in config["datasets"]}
except VadError as exc:
    raise WorkflowError(str(exc))

# Rules call the package's CLI; PYTHONPATH makes it work in any env that has the dependencies.
VAD = f"PYTHONPATH={workflow.basedir}${{PYTHONPATH:+:$PYTHONPATH}} python -m vad_pipeline"
ENVS = f"{workflow.basedir}/envs"


wildcard_constraints:
    dataset="|".join(RESOLVED),
    split="train|test",
    video="[^/]+",


def params_json(*sections, extra=None):
    """The resolved settings a stage depends on, as JSON: a change reruns that stage only."""

    def fn(wildcards):
        p = vconf.stage_params(RESOLVED[wildcards.dataset], *sections)
        if extra:
            p.update(extra(RESOLVED[wildcards.dataset]))
        return json.dumps(p, sort_keys=True)

    return fn


def video_names(dataset, split):
    try:
        return vdata.video_names(RESOLVED[dataset], split)
    except VadError as exc:
        raise WorkflowError(str(exc))


def frames_input(wildcards):
    """What a per-video stage reads: the generated demo folder, or the video's folder or file."""
    cfg = RESOLVED[wildcards.dataset]
    if cfg["dataset"]["layout"] == "demo":
        return cfg["dataset"]["root"]
    try:
        return str(vdata.video_source(cfg, wildcards.split, wildcards.video))
    except VadError as exc:
        raise WorkflowError(str(exc))


def dataset_input(wildcards):
    cfg = RESOLVED[wildcards.dataset]
    return cfg["dataset"]["root"]


def per_video(pattern):
    def fn(wildcards):
        return expand(pattern, dataset=wildcards.dataset, split=wildcards.split,
                      video=video_names(wildcards.dataset, wildcards.split))

    return fn
