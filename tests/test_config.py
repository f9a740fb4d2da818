"""Loading, merging and validating the configuration (vad_pipeline.config)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from vad_pipeline import config as C
from vad_pipeline.io import VadError

REPO = Path(__file__).resolve().parents[1]


def _small() -> dict:
    """A minimal config exercising every layer of the merge order."""
    return {
        "preset": "cpu",
        "datasets": {
            "d": {
                "layout": "frames",
                "root": "somewhere",
                "gt": "d.mat",
                "train": {"epochs": 3, "lr": 0.1},
                "score": {"w_p": 0.5},
                "presets": {"cpu": {"train": {"epochs": 4}, "score": {"w_f": 3.0}}},
            },
            "e": {"layout": "frames", "root": "elsewhere"},
        },
        "train": {"epochs": 1, "batch_size": 7, "lr": 0.5, "block": 9},
        "score": {"w_f": 0.1, "w_p": 0.2},
        "presets": {
            "cpu": {"train": {"epochs": 2, "batch_size": 8}, "score": {"w_p": 0.3}},
            "gpu": {"train": {"epochs": 99}},
        },
    }


def test_shipped_config_validates(base_config):
    assert base_config["preset"] in base_config["presets"]
    # defaults are filled in from the schema
    assert base_config["detect"]["motion"]["blur"] == 5
    assert base_config["train"]["grad_clip"] == 0.0
    assert set(base_config["datasets"]) >= {"demo", "ped2"}


@pytest.mark.parametrize("dataset", ["demo", "ped2", "avenue", "shanghaitech"])
@pytest.mark.parametrize("preset", ["cpu", "gpu"])
def test_every_shipped_dataset_resolves(base_config, dataset, preset):
    cfg = copy.deepcopy(base_config)
    cfg["preset"] = preset
    r = C.resolve(cfg, dataset)
    assert r["name"] == dataset and r["preset"] == preset
    assert r["dataset"]["root"] == base_config["datasets"][dataset]["root"]
    for section in C.SECTIONS:
        assert section in r


def test_shipped_layers_apply(base_config):
    cfg = copy.deepcopy(base_config)
    cfg["preset"] = "gpu"
    ped2 = C.resolve(cfg, "ped2")
    assert ped2["model"]["width"] == base_config["presets"]["gpu"]["model"]["width"]
    assert ped2["score"]["w_p"] == 0.01  # from the dataset section
    assert ped2["stc"]["color"] == "gray"


def test_resolve_merge_order():
    r = C.resolve(_small(), "d")
    t = r["train"]
    assert t["block"] == 9            # top level only
    assert t["batch_size"] == 8       # preset beats top level
    assert t["lr"] == 0.1             # dataset beats top level
    assert t["epochs"] == 4           # dataset preset beats everything
    assert t["lr_step"] == 10         # schema default where nobody sets it
    assert r["score"]["w_f"] == 3.0   # dataset preset
    assert r["score"]["w_p"] == 0.5   # dataset beats preset
    assert r["dataset"] == {"layout": "frames", "root": "somewhere", "gt": "d.mat", "labelled": True,
                            "allow_pickle": False, "fingerprint": "content", "fps": None, "frame_size": None,
                            "work_height": 240}
    assert r["name"] == "d"


def test_resolve_other_dataset_and_preset_do_not_leak():
    cfg = _small()
    e = C.resolve(cfg, "e")
    assert e["train"]["epochs"] == 2 and e["train"]["lr"] == 0.5
    assert e["score"] == {"w_f": 0.1, "w_p": 0.3, "w_m": 1.0, "w_c": 1.0, "weights": "auto", "batch_size": 512,
                          "train_cubes": 200000}
    cfg["preset"] = "gpu"
    d = C.resolve(cfg, "d")
    assert d["train"]["epochs"] == 3  # dataset (no dataset gpu preset), beats presets.gpu
    assert d["train"]["batch_size"] == 7


def test_resolve_does_not_modify_its_input():
    cfg = _small()
    before = copy.deepcopy(cfg)
    C.resolve(cfg, "d")
    assert cfg == before


def test_preset_defined_only_under_the_dataset():
    cfg = _small()
    cfg["preset"] = "mine"
    cfg["datasets"]["d"]["presets"]["mine"] = {"train": {"epochs": 5}}
    assert C.resolve(cfg, "d")["train"]["epochs"] == 5


def test_undefined_preset_raises():
    cfg = _small()
    cfg["preset"] = "nope"
    with pytest.raises(VadError, match="nope"):
        C.resolve(cfg, "d")


def test_unknown_dataset_raises():
    with pytest.raises(VadError, match="'zzz'"):
        C.resolve(_small(), "zzz")


def test_wrong_type_at_top_level_names_the_key(tmp_path):
    cfg = _small()
    cfg["train"]["epochs"] = "ten"
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(VadError, match=r"train\.epochs") as exc:
        C.load(path)
    assert str(path) in str(exc.value)


def test_wrong_type_in_dataset_override_names_the_key():
    cfg = _small()
    cfg["datasets"]["d"]["train"]["lr"] = "fast"
    C.validate(copy.deepcopy(cfg))  # overrides are partial: only checked once merged
    with pytest.raises(VadError, match=r"train\.lr") as exc:
        C.resolve(cfg, "d")
    assert "dataset d" in str(exc.value)


def test_numbers_given_as_strings_on_the_command_line_are_read_as_numbers():
    """snakemake --config 'cells={"frames": 16}' passes "16" (YAML's base loader): wherever the
    schema wants an integer, number or boolean, such a string is converted, at the top level and
    in a dataset's override; words stay words and still fail where a number is due."""
    cfg = _small()
    cfg["cells"] = {"frames": "16", "scale": "0.5", "windows": "grid"}
    cfg["frame_scores"] = {"fill": "0.25", "smoothing": "2"}
    cfg["datasets"]["d"]["cells"] = {"k": "3"}
    C.validate(cfg)
    assert cfg["cells"]["frames"] == 16 and cfg["cells"]["scale"] == 0.5 and cfg["cells"]["windows"] == "grid"
    assert cfg["frame_scores"]["fill"] == 0.25 and cfg["frame_scores"]["smoothing"] == 2
    assert C.resolve(cfg, "d")["cells"]["k"] == 3
    assert C.validate({**_small(), "frame_scores": {"fill": "min"}})["frame_scores"]["fill"] == "min"
    with pytest.raises(VadError, match=r"cells\.frames"):
        C.validate({**_small(), "cells": {"frames": "16.5"}})


def test_wrong_type_in_dataset_preset_names_the_key():
    cfg = _small()
    cfg["datasets"]["d"]["presets"]["cpu"]["train"]["epochs"] = "ten"
    with pytest.raises(VadError, match=r"train\.epochs"):
        C.resolve(cfg, "d")


def test_unknown_key_in_dataset_override_raises():
    cfg = _small()
    cfg["datasets"]["d"]["train"]["epoch"] = 3  # typo
    with pytest.raises(VadError, match="epoch") as exc:
        C.resolve(cfg, "d")
    assert "train" in str(exc.value)


def test_unknown_key_in_preset_section_raises():
    cfg = _small()
    cfg["presets"]["cpu"]["train"]["bach_size"] = 3
    with pytest.raises(VadError, match="bach_size"):
        C.resolve(cfg, "d")


def test_unknown_section_in_dataset_raises():
    cfg = _small()
    cfg["datasets"]["d"]["trian"] = {"epochs": 3}
    with pytest.raises(VadError, match="trian"):
        C.validate(cfg)


def test_out_of_range_value_raises():
    cfg = _small()
    cfg["train"]["epochs"] = 0
    with pytest.raises(VadError, match=r"train\.epochs"):
        C.validate(cfg)


def test_missing_datasets_raises():
    with pytest.raises(VadError, match="datasets"):
        C.validate({"seed": 1})


def test_load_missing_and_broken_files(tmp_path):
    with pytest.raises(VadError, match="not found"):
        C.load(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("datasets: [unclosed\n")
    with pytest.raises(VadError, match="YAML"):
        C.load(bad)


def test_load_with_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(_small()))
    cfg = C.load(path, overrides={"train": {"epochs": 6}, "preset": "gpu"})
    assert cfg["train"]["epochs"] == 6 and cfg["train"]["batch_size"] == 7
    assert cfg["preset"] == "gpu"


def test_deep_merge_copies():
    base = {"a": {"b": [1, 2], "c": 1}}
    over = {"a": {"c": 2, "d": {"e": 1}}}
    out = C.deep_merge(base, over)
    assert out == {"a": {"b": [1, 2], "c": 2, "d": {"e": 1}}}
    out["a"]["b"].append(3)
    out["a"]["d"]["e"] = 5
    assert base == {"a": {"b": [1, 2], "c": 1}}
    assert over == {"a": {"c": 2, "d": {"e": 1}}}


def test_stage_params_and_hash():
    r = C.resolve(_small(), "d")
    p = C.stage_params(r, "train")
    assert set(p) == {"name", "dataset", "train"}
    assert C.config_hash(p) == C.config_hash(copy.deepcopy(p))
    changed = copy.deepcopy(p)
    changed["train"]["lr"] = 0.2
    assert C.config_hash(changed) != C.config_hash(p)


def test_shipped_config_file_is_the_one_loaded(base_config):
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    assert base_config["datasets"]["demo"]["root"] == raw["datasets"]["demo"]["root"]


# --------------------------------------------------------------------------- per-model layer


def _with_model_layer(model: str | None = None) -> dict:
    """_small() with a layer for mgsm under dataset d (and a model choice, if given)."""
    cfg = _small()
    cfg["datasets"]["d"]["models"] = {"mgsm": {
        "model": {"memory_sizes": [2, 3, 4]},
        "loss": {"lambda_align": 2.0},
        "score": {"w_f": 9.0},
        "presets": {"cpu": {"train": {"epochs": 11}}},
    }}
    cfg["model"] = {"name": model} if model else {}  # {}: schema defaults
    cfg["loss"] = {}
    return cfg


def test_model_layer_applies_only_to_its_model():
    r = C.resolve(_with_model_layer(), "d")  # model.name defaults to amsrc: no mgsm layer
    assert r["model"]["name"] == "amsrc"
    assert r["score"]["w_f"] == 3.0 and r["train"]["epochs"] == 4
    assert r["loss"]["lambda_align"] == 1.0 and r["model"]["memory_sizes"] == [40, 40, 40]
    assert "models" not in r["dataset"]


def test_model_layer_comes_after_the_dataset_and_its_preset():
    cfg = _with_model_layer("mgsm")
    r = C.resolve(cfg, "d")
    assert r["score"]["w_f"] == 9.0       # model layer beats the dataset preset (3.0)
    assert r["score"]["w_p"] == 0.5       # what the model layer leaves alone: dataset as before
    assert r["train"]["epochs"] == 11     # model layer's preset beats everything
    assert r["train"]["lr"] == 0.1 and r["train"]["batch_size"] == 8
    assert r["loss"]["lambda_align"] == 2.0 and r["model"]["memory_sizes"] == [2, 3, 4]
    assert r["dataset"] == C.resolve(_small(), "d")["dataset"]  # the layer is not a dataset setting
    # another dataset has no mgsm layer; another preset leaves out the layer's cpu preset
    assert C.resolve(cfg, "e")["score"]["w_f"] == 0.1
    cfg["preset"] = "gpu"
    r = C.resolve(cfg, "d")
    assert r["train"]["epochs"] == 3 and r["score"]["w_f"] == 9.0


def test_model_chosen_by_the_dataset_brings_its_layer():
    cfg = _with_model_layer()
    cfg["datasets"]["d"]["presets"]["cpu"]["model"] = {"name": "mgsm"}
    r = C.resolve(cfg, "d")
    assert r["model"]["name"] == "mgsm" and r["score"]["w_f"] == 9.0
    assert C.resolve(cfg, "e")["model"]["name"] == "amsrc"


def test_model_layer_may_not_change_the_model():
    cfg = _with_model_layer("mgsm")
    cfg["datasets"]["d"]["models"]["mgsm"]["model"]["name"] = "amsrc"
    with pytest.raises(VadError, match=r"models\.mgsm"):
        C.resolve(cfg, "d")


def test_model_layer_is_checked():
    cfg = _with_model_layer("mgsm")
    cfg["datasets"]["d"]["models"]["mgsm"]["loss"]["lambda_algin"] = 1.0  # typo: caught once merged
    with pytest.raises(VadError, match="lambda_algin"):
        C.resolve(cfg, "d")
    cfg = _with_model_layer("mgsm")
    cfg["datasets"]["d"]["models"]["mgsm"]["model"]["memory_sizes"] = [40, 40]
    with pytest.raises(VadError, match=r"model\.memory_sizes"):
        C.resolve(cfg, "d")
    for bad in ({"mgsn": {}}, {"mgsm": {"trian": {}}}, {"mgsm": {"presets": {"cpu": {"models": {}}}}}):
        cfg = _small()
        cfg["datasets"]["d"]["models"] = bad
        with pytest.raises(VadError):
            C.validate(cfg)


def test_every_layer_accepts_every_section():
    """The section lists of the schema's override layers are the sections resolve merges."""
    defs = C.load_schema()["$defs"]
    assert set(defs["overrides"]["properties"]) == set(C.SECTIONS)
    assert set(defs["model_overrides"]["properties"]) == set(C.SECTIONS) | {"presets"}
    assert set(C.SECTIONS) <= set(defs["dataset"]["properties"])


@pytest.mark.parametrize("dataset, w_f, w_p, memory, align, gpu_train", [
    ("ped2", 0.8, 0.2, [40, 40, 40], 1.0, (60, 128)),
    ("avenue", 0.3, 0.7, [40, 40, 40], 1.0, (30, 128)),
    ("shanghaitech", 0.7, 0.3, [40, 60, 80], 10.0, (30, 384)),
])
def test_shipped_mgsm_settings_follow_its_paper(base_config, dataset, w_f, w_p, memory, align, gpu_train):
    cfg = copy.deepcopy(base_config)
    cfg["preset"] = "gpu"
    amsrc = C.resolve(cfg, dataset)
    cfg["model"]["name"] = "mgsm"
    r = C.resolve(cfg, dataset)
    assert (r["score"]["w_f"], r["score"]["w_p"]) == (w_f, w_p)
    assert r["model"]["memory_sizes"] == memory
    assert {k: r["loss"][k] for k in ("lambda_int", "lambda_gd", "lambda_align", "lambda_compact",
                                      "lambda_div", "lambda_model")} == {
        "lambda_int": 1.0, "lambda_gd": 1.0, "lambda_align": align, "lambda_compact": 0.005,
        "lambda_div": 0.0001, "lambda_model": 1.0}
    assert (r["train"]["epochs"], r["train"]["batch_size"]) == gpu_train
    # amsrc keeps its own settings on the same dataset
    assert amsrc["score"] == base_config["datasets"][dataset]["score"] | {"w_m": 1.0, "w_c": 1.0, "batch_size": 512, "weights": "auto",
                                                                                      "train_cubes": 200000}
    assert amsrc["train"]["epochs"] == {"ped2": 60, "avenue": 40, "shanghaitech": 40}[dataset]
    cfg["preset"] = "cpu"
    assert C.resolve(cfg, dataset)["score"]["w_f"] == w_f


@pytest.mark.parametrize("name", sorted(C.MODEL_KEYS))
def test_model_keys_match_the_models(base_config, name):
    """The keys Snakemake tracks for a model are exactly what it is built from and trained on."""
    import dataclasses

    from vad_pipeline.models import build_model

    cfg = copy.deepcopy(base_config)
    cfg["model"]["name"] = name
    r = C.resolve(cfg, "demo")
    model = build_model(r["model"], in_frames=4, channels=1)
    assert tuple(model.loss_terms) == C.MODEL_KEYS[name]["terms"]
    built_from = {f.name for f in dataclasses.fields(model.cfg)} - {"in_frames", "channels"}
    assert set(C.MODEL_KEYS[name]["model"]) == built_from


def test_settings_of_another_model_do_not_reach_a_stage(base_config):
    r = C.resolve(base_config, "ped2")
    base = C.stage_params(r, "model", "loss")
    other = copy.deepcopy(r)
    other["model"]["memory_sizes"] = [80, 80, 80]   # mgsm only
    other["loss"]["lambda_div"] = 0.5                # mgsm only
    assert C.stage_params(other, "model", "loss") == base
    other["loss"]["lambda_sim"] = 9.0                # amsrc's own
    assert C.stage_params(other, "model", "loss") != base


# --------------------------------------------------------------------------- where a value comes from


def test_explain_names_the_last_layer_that_sets_each_key():
    cfg = _with_model_layer("mgsm")
    rows = {k: (v, layer) for k, v, layer in C.explain(cfg, "d")}
    r = C.resolve(cfg, "d")
    assert rows["train.block"] == (9, "config")
    assert rows["train.batch_size"] == (8, "presets.cpu")
    assert rows["train.lr"] == (0.1, "datasets.d")
    assert rows["train.epochs"] == (11, "datasets.d.models.mgsm.presets.cpu")
    assert rows["score.w_f"] == (9.0, "datasets.d.models.mgsm")
    assert rows["train.lr_step"] == (10, "default")
    assert rows["dataset.root"] == ("somewhere", "datasets.d")
    assert rows["dataset.labelled"] == (True, "default")
    assert rows["model.name"] == ("mgsm", "config")
    # one row per resolved leaf, with the resolved value
    for key, (value, _) in rows.items():
        node = r
        for part in key.split("."):
            node = node[part]
        assert node == value, key


def test_explain_validated_config_and_variant(base_config):
    cfg = copy.deepcopy(base_config)  # every default filled in: still reported as the default
    rows = {k: layer for k, _, layer in C.explain(cfg, "shanghaitech", "mgsm_mem80")}
    assert rows["train.lr"] == "default" and rows["seed"] == "default"
    assert rows["model.memory_sizes"] == "ablation.mgsm_mem80"
    assert rows["loss.lambda_align"] == "datasets.shanghaitech.models.mgsm"
    assert rows["loss.lambda_sim"] == "datasets.shanghaitech"
    with pytest.raises(VadError, match="nope"):
        C.explain(cfg, "ped2", "nope")


def test_config_command(tmp_path, capsys):
    from vad_pipeline.cli import main

    extra = tmp_path / "extra.yaml"
    extra.write_text("train: {lr: 0.001}\n")
    assert main(["config", "--configfile", str(REPO / "config.yaml"), "--dataset", "demo",
                 "--preset", "gpu", "--also", str(extra)]) == 0
    lines = {line.split(" = ")[0]: line for line in capsys.readouterr().out.splitlines()}
    assert lines["train.epochs"].split() == ["train.epochs", "=", "8", "(datasets.demo.presets.gpu)"]
    assert lines["model.width"].split() == ["model.width", "=", "64", "(presets.gpu)"]
    assert lines["train.lr"].split() == ["train.lr", "=", "0.001", "(config)"]
    assert lines["preset"].split() == ["preset", "=", '"gpu"', "(--preset)"]
    assert main(["config", "--configfile", str(REPO / "config.yaml"), "--dataset", "nope"]) == 1
