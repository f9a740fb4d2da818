"""Load, merge and validate config.yaml; resolve the settings of one dataset."""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from pathlib import Path

import yaml

from vad_pipeline.io import VadError

SCHEMA_PATH = Path(__file__).with_name("config.schema.yaml")
SECTIONS = ("demo", "detect", "flow", "stc", "model", "train", "loss", "score", "frame_scores", "report",
            "localisation")


@functools.lru_cache(maxsize=1)
def _schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def load_schema() -> dict:
    """The schema (parsed once; a copy, so callers may change it)."""
    return copy.deepcopy(_schema())


def deep_merge(base: dict, over: dict) -> dict:
    """Return ``base`` updated by ``over``; nested dicts merge, everything else replaces."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _validator(schema: dict):
    import jsonschema

    cls = jsonschema.validators.validator_for(schema)

    def set_defaults(validator, properties, instance, schema_):
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if "default" in sub and prop not in instance:
                    instance[prop] = copy.deepcopy(sub["default"])
        yield from cls.VALIDATORS["properties"](validator, properties, instance, schema_)

    return jsonschema.validators.extend(cls, {"properties": set_defaults})(schema)


def validate(config: dict, where: str = "config") -> dict:
    """Fill defaults in place and check ``config`` against the schema; raise VadError if wrong."""
    errors = sorted(_validator(load_schema()).iter_errors(config), key=lambda e: list(e.path))
    if errors:
        err = errors[0]
        key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        raise VadError(f"{where}: {key}: {err.message}")
    return config


def load(path: str | Path, overrides: dict | None = None) -> dict:
    path = Path(path)
    if not path.is_file():
        raise VadError(f"{path}: config file not found")
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise VadError(f"{path}: not valid YAML ({exc})") from exc
    if overrides:
        config = deep_merge(config, overrides)
    return validate(config, where=str(path))


def _merge_sections(out: dict, layer: dict) -> dict:
    return deep_merge(out, {k: v for k, v in layer.items() if k in SECTIONS})


def resolve(config: dict, dataset: str, overrides: dict | None = None) -> dict:
    """Settings for one dataset, later layers winning: sections -> preset -> dataset -> dataset's
    preset -> datasets.<name>.models.<model.name> -> its preset -> ``overrides``; validated.

    ``overrides`` (partial sections; an ablation variant's) come last so that they beat the dataset
    and model layers (e.g. Table 3's memory sizes over ShanghaiTech's own); a model.name among them
    picks the model, and with it the model layer, before that layer applies."""
    overrides = overrides or {}
    datasets = config.get("datasets", {})
    if dataset not in datasets:
        raise VadError(f"config: no dataset {dataset!r} under datasets (known: {sorted(datasets)})")
    preset = config.get("preset", "cpu")
    presets = config.get("presets", {})
    meta = copy.deepcopy(datasets[dataset])
    ds_presets = meta.pop("presets", {})
    ds_models = meta.pop("models", {})
    if preset not in presets and preset not in ds_presets:
        raise VadError(f"config: preset {preset!r} is not defined under presets")
    out = {k: copy.deepcopy(config[k]) for k in SECTIONS if k in config}
    for layer in (presets.get(preset, {}), meta, ds_presets.get(preset, {})):
        out = _merge_sections(out, layer)
    # The model the layers above chose brings this dataset's settings for it (e.g. the loss and
    # fusion weights its paper uses there): one more layer, with presets of its own.
    name = out.get("model", {}).get("name", load_schema()["$defs"]["model"]["properties"]["name"]["default"])
    name = overrides.get("model", {}).get("name", name)
    out = _merge_sections(out, {"model": {"name": name}})
    model_layer = ds_models.get(name, {})
    for layer in (model_layer, model_layer.get("presets", {}).get(preset, {})):
        out = _merge_sections(out, layer)
    if out.get("model", {}).get("name", name) != name:
        raise VadError(f"config: datasets.{dataset}.models.{name} may not change model.name")
    out = _merge_sections(out, overrides)
    ds = {k: v for k, v in meta.items() if k not in SECTIONS}
    full = {
        "preset": preset,
        "seed": config.get("seed", 0),
        "device": config.get("device", "auto"),
        "datasets": {dataset: ds},
        **out,
    }
    validate(full, where=f"config (dataset {dataset}, preset {preset})")
    full["name"] = dataset
    full["dataset"] = full.pop("datasets")[dataset]
    return full


# What each model reads of the model and loss sections (its loss terms k, weighted by
# loss.lambda_k, plus lambda_model): a setting only another model uses must change neither this
# model's Snakemake params nor its checkpoint hash. tests/test_config.py checks it against the models.
MODEL_KEYS = {
    "amsrc": {"model": ("width", "fusion", "skips"), "terms": ("int", "gd", "sim")},
    "mgsm": {"model": ("width", "memory_sizes", "streams", "memory", "skips"),
             "terms": ("int", "gd", "align", "compact", "div")},
}


def model_sections(resolved: dict) -> dict:
    """The ``model`` and ``loss`` sections reduced to what the chosen model uses."""
    name = resolved["model"]["name"]
    keys = MODEL_KEYS[name]
    lambdas = [f"lambda_{t}" for t in keys["terms"]] + ["lambda_model"]
    return {"model": {k: v for k, v in resolved["model"].items() if k == "name" or k in keys["model"]},
            "loss": {k: v for k, v in resolved["loss"].items() if k in lambdas}}


# what a trained model depends on: rule train's params, and what ablation variants must share to
# share one training
TRAIN_SECTIONS = ("model", "train", "loss", "seed", "device", "preset")


def stage_params(resolved: dict, *sections: str) -> dict:
    """The part of a resolved config one stage depends on (what Snakemake tracks as params).

    ``dataset.root`` is left out: moving a dataset changes no result (the rules pass it as
    ``--root``)."""
    keep = {"name": resolved["name"], "dataset": {k: v for k, v in resolved["dataset"].items() if k != "root"}}
    for s in sections:
        keep[s] = resolved[s]
    if "model" in keep or "loss" in keep:
        keep.update({k: v for k, v in model_sections(resolved).items() if k in keep})
    return keep


def config_hash(cfg: dict) -> str:
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:16]
