"""Load, merge and validate config.yaml; resolve the settings of one dataset."""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
import re
from pathlib import Path

import yaml

from vad_pipeline.io import VadError

SCHEMA_PATH = Path(__file__).with_name("config.schema.yaml")
SECTIONS = ("demo", "detect", "flow", "stc", "model", "train", "loss", "cameras", "motion", "cells", "score",
            "validation", "frame_scores", "report", "localisation")


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


def _integer(v: str) -> int | None:
    return int(v) if re.fullmatch(r"\s*[+-]?\d+\s*", v) else None


def _number(v: str) -> int | float | None:
    try:
        x = float(v)
    except ValueError:
        return None
    i = _integer(v)
    return i if i is not None else (x if math.isfinite(x) else None)


_SCALARS = {"integer": _integer, "number": _number,
            "boolean": lambda v: {"true": True, "false": False}.get(v.strip().lower())}


def coerce_strings(value, schema: dict | None = None, root: dict | None = None):
    """``value`` with strings turned into the integer, number or boolean the schema asks for
    there (dicts and lists changed in place). Snakemake reads a nested ``--config`` value with
    YAML's base loader, so ``--config 'cells={"frames": 16}'`` arrives as ``{"frames": "16"}``."""
    root = root if root is not None else _schema()
    schema = root if schema is None else schema
    while "$ref" in schema:   # local references only (#/$defs/...)
        node = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    if isinstance(value, str):
        alts = [schema, *schema.get("oneOf", []), *schema.get("anyOf", [])]
        kinds = [k for a in alts for k in ([a["type"]] if isinstance(a.get("type"), str) else a.get("type", []))]
        if any(value in a.get("enum", ()) for a in alts) or any(
                a.get("type") == "string" and "enum" not in a for a in alts):
            return value   # a valid string as it is
        for kind in kinds:
            converted = _SCALARS[kind](value) if kind in _SCALARS else None
            if converted is not None:
                return converted
        return value
    if isinstance(value, dict):
        props, extra = schema.get("properties", {}), schema.get("additionalProperties")
        for key in list(value):
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                value[key] = coerce_strings(value[key], sub, root)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        value[:] = [coerce_strings(v, schema["items"], root) for v in value]
    return value


def validate(config: dict, where: str = "config") -> dict:
    """Fill defaults in place and check ``config`` against the schema (strings that stand for a
    number or boolean where the schema wants one converted first: :func:`coerce_strings`); raise
    VadError if wrong."""
    coerce_strings(config)
    errors = sorted(_validator(load_schema()).iter_errors(config), key=lambda e: list(e.path))
    if errors:
        err = errors[0]
        key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        raise VadError(f"{where}: {key}: {err.message}")
    return config


@functools.lru_cache(maxsize=1)
def _defaults() -> dict:
    return validate({"datasets": {}})


def defaults() -> dict:
    """The schema's defaults: every top-level setting and section, filled (a copy)."""
    return copy.deepcopy(_defaults())


def read(path: str | Path) -> dict:
    """A config file as written (not validated, no defaults filled)."""
    path = Path(path)
    if not path.is_file():
        raise VadError(f"{path}: config file not found")
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise VadError(f"{path}: not valid YAML ({exc})") from exc


def load(path: str | Path, overrides: dict | None = None) -> dict:
    """A config file, ``overrides`` merged over it, validated with the schema's defaults filled."""
    config = read(path)
    if overrides:
        config = deep_merge(config, overrides)
    return validate(config, where=str(path))


def _sections(layer: dict) -> dict:
    out = {k: v for k, v in layer.items() if k in SECTIONS}
    if isinstance(out.get("cameras"), str):   # datasets.<d>.cameras: prefix is short for {assign: prefix}
        out["cameras"] = {"assign": out["cameras"]}
    return out


def layers(config: dict, dataset: str, overrides: dict | None = None) -> list[tuple[str, dict]]:
    """The layers of one dataset's settings as (name, partial sections), later ones winning.

    Three kinds (README "Configuration"):
      defaults      the schema's, then config.yaml's top-level sections, then ``presets.<preset>``;
      dataset       ``datasets.<name>``;
      preset/model  ``datasets.<name>.presets.<preset>``, ``datasets.<name>.models.<model.name>``,
                    ``datasets.<name>.models.<model.name>.presets.<preset>``;
    and, for an ablation variant only, its ``overrides`` (partial sections) last, so that they beat
    the dataset and model layers (e.g. Table 3's memory sizes over ShanghaiTech's own). model.name
    is the one the layers up to the dataset's preset give, or the overrides' (a models.<name>
    layer may not change it): it picks the models.<name> layer."""
    overrides = overrides or {}
    datasets = config.get("datasets", {})
    if dataset not in datasets:
        raise VadError(f"config: no dataset {dataset!r} under datasets (known: {sorted(datasets)})")
    preset = config.get("preset", _defaults()["preset"])
    presets = config.get("presets", {})
    meta = datasets[dataset]
    ds_presets = meta.get("presets", {})
    ds_models = meta.get("models", {})
    if preset not in presets and preset not in ds_presets:
        raise VadError(f"config: preset {preset!r} is not defined under presets")
    ds = f"datasets.{dataset}"
    out = [("default", {k: _defaults()[k] for k in SECTIONS}),
           ("config", _sections(config)),
           (f"presets.{preset}", _sections(presets.get(preset, {}))),
           (ds, _sections(meta)),
           (f"{ds}.presets.{preset}", _sections(ds_presets.get(preset, {})))]
    # The model the layers above chose brings this dataset's settings for it (e.g. the loss and
    # fusion weights its paper uses there), with presets of its own.
    chosen = {}
    for _, layer in out:
        chosen = deep_merge(chosen, layer.get("model", {}))
    name = overrides.get("model", {}).get("name", chosen["name"])
    model_layer = ds_models.get(name, {})
    out += [(f"{ds}.models.{name}", _sections(model_layer)),
            (f"{ds}.models.{name}.presets.{preset}", _sections(model_layer.get("presets", {}).get(preset, {})))]
    if overrides:
        out.append(("overrides", _sections(overrides)))
    return [(n, copy.deepcopy(layer)) for n, layer in out]


def resolve(config: dict, dataset: str, overrides: dict | None = None) -> dict:
    """Settings for one dataset: its :func:`layers` merged, validated."""
    stack = layers(config, dataset, overrides)
    out: dict = {}
    for _, layer in stack:
        out = deep_merge(out, layer)
    model_layers = [(n, layer) for n, layer in stack if ".models." in n]
    picked = model_layers[0][0].split(".models.")[1]
    name = picked
    for _, layer in model_layers:
        name = layer.get("model", {}).get("name", name)
    if name != picked:
        raise VadError(f"config: datasets.{dataset}.models.{picked} may not change model.name")
    preset = config.get("preset", _defaults()["preset"])
    meta = {k: v for k, v in config["datasets"][dataset].items()
            if k not in SECTIONS and k not in ("presets", "models")}
    full = {
        "preset": preset,
        "seed": config.get("seed", _defaults()["seed"]),
        "device": config.get("device", _defaults()["device"]),
        "datasets": {dataset: copy.deepcopy(meta)},
        **out,
    }
    validate(full, where=f"config (dataset {dataset}, preset {preset})")
    full["name"] = dataset
    full["dataset"] = full.pop("datasets")[dataset]
    return full


def _leaves(tree: dict, prefix: str = ""):
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from _leaves(value, path + ".")
        else:
            yield path, value


def _lookup(tree, path: str):
    for part in path.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return _MISSING
        tree = tree[part]
    return tree


_MISSING = object()


def explain(config: dict, dataset: str, variant: str | None = None) -> list[tuple[str, object, str]]:
    """Every resolved setting of ``dataset`` (with ablation ``variant``'s overrides, if given) as
    (key, value, layer): the layer is the last one that sets the key (see :func:`layers`), or
    ``default`` where only the schema does. A top-level value of ``config`` equal to the schema's
    default counts as the default (a validated config has every default filled in)."""
    overrides = None
    if variant is not None:
        if variant not in config.get("ablation", {}):
            raise VadError(f"config: no ablation variant {variant!r} (known: {sorted(config.get('ablation', {}))})")
        overrides = config["ablation"][variant]["overrides"]
    resolved = resolve(config, dataset, overrides)
    stack = layers(config, dataset, overrides)
    if variant is not None:
        stack[-1] = (f"ablation.{variant}", stack[-1][1])
    default = _defaults()
    meta_default = validate({"datasets": {"x": {"layout": "demo", "root": ""}}})["datasets"]["x"]
    rows = []
    for key in ("preset", "seed", "device"):
        value = config.get(key, default[key])
        rows.append((key, resolved[key], "config" if value != default[key] else "default"))
    meta = config["datasets"][dataset]
    for key, value in _leaves({"dataset": resolved["dataset"]}):
        sub = key.split(".", 1)[1]
        set_here = sub in meta and meta[sub] != meta_default.get(sub, _MISSING)
        rows.append((key, value, f"datasets.{dataset}" if set_here else "default"))
    for key, value in _leaves({k: resolved[k] for k in SECTIONS}):
        source = "default"
        for name, layer in stack:
            found = _lookup(layer, key)
            if found is _MISSING or (name == "config" and found == _lookup(default, key)):
                continue
            source = name
        rows.append((key, value, source))
    rows.append(("name", resolved["name"], f"datasets.{dataset}"))
    return rows


def format_explained(rows: list[tuple[str, object, str]]) -> str:
    """``key = value   (layer)`` lines, values as JSON, the layers aligned."""
    cells = [f"{key} = {json.dumps(value)}" for key, value, _ in rows]
    width = max(len(c) for c in cells) + 3
    return "\n".join(f"{c:<{width}}({layer})" for c, (_, _, layer) in zip(cells, rows))


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


# datasets.<name> keys no stage's result depends on: where the footage lives, how its files are
# tracked, the batches it is applied to and a bundle to apply (their rules track what they read)
UNTRACKED_DATASET_KEYS = ("root", "fingerprint", "apply", "bundle")


def stage_params(resolved: dict, *sections: str, only: dict[str, tuple[str, ...]] | None = None) -> dict:
    """The part of a resolved config one stage depends on (what Snakemake tracks as params).

    ``dataset.root`` is left out: moving a dataset changes no result (the rules pass it as
    ``--root``); so is ``dataset.fingerprint``: how videos are fingerprinted is not a result (the
    fingerprints it gives are params of their own); so are ``apply`` and ``bundle`` (a batch
    added reruns nothing of the dataset's own). ``only`` narrows a section to the keys the
    stage reads."""
    keep = {"name": resolved["name"],
            "dataset": {k: v for k, v in resolved["dataset"].items() if k not in UNTRACKED_DATASET_KEYS}}
    for s in sections:
        keep[s] = resolved[s]
        if only and s in only:
            keep[s] = {k: keep[s][k] for k in only[s]}
    if "model" in keep or "loss" in keep:
        keep.update({k: v for k, v in model_sections(resolved).items() if k in keep})
    return keep


def config_hash(cfg: dict) -> str:
    return hashlib.sha256(json.dumps(cfg, sort_keys=True).encode()).hexdigest()[:16]
