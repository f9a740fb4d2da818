"""Ablation variants (config.yaml `ablation:`), their table (vad_pipeline.ablation) and the
Snakemake target results/{dataset}/ablation.csv."""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import write_config
from tests.smk import planned_jobs, snakemake
from vad_pipeline import ablation as A
from vad_pipeline import cli
from vad_pipeline import config as C
from vad_pipeline.io import VadError
from vad_pipeline.models import build_model

PAPERS = ("ped2", "avenue", "shanghaitech")


# --------------------------------------------------------------------------- variants as config


def test_overrides_come_after_every_layer(base_config):
    """A variant's overrides beat the dataset's model layer (ShanghaiTech's mgsm: memory 40/60/80,
    lambda_align 10, w_f 0.7), and its model.name picks that layer in the first place."""
    over = {"model": {"name": "mgsm", "memory_sizes": [20, 20, 20]}, "loss": {"lambda_align": 0.0},
            "score": {"w_f": 0.0}}
    r = C.resolve(base_config, "shanghaitech", over)
    assert r["model"]["name"] == "mgsm" and r["model"]["memory_sizes"] == [20, 20, 20]
    assert r["loss"]["lambda_align"] == 0.0 and r["score"]["w_f"] == 0.0
    assert r["score"]["w_p"] == 0.3                       # from the mgsm layer of shanghaitech
    assert r["loss"]["lambda_compact"] == 0.005
    # no overrides: the dataset as before; an amsrc variant does not get mgsm's layer
    assert C.resolve(base_config, "shanghaitech", {}) == C.resolve(base_config, "shanghaitech")
    amsrc = C.resolve(base_config, "shanghaitech", {"model": {"name": "amsrc", "fusion": "none"}})
    assert amsrc["score"]["w_f"] == 0.4 and amsrc["model"]["fusion"] == "none"
    # the input is left alone, and a bad override is named once merged
    assert "ablation" in base_config and "streams" not in base_config["datasets"]["shanghaitech"].get("model", {})
    with pytest.raises(VadError, match="streams"):
        C.resolve(base_config, "ped2", {"model": {"name": "mgsm", "streams": "flow"}})


def test_ablation_section_is_checked(base_config):
    cfg = copy.deepcopy(base_config)
    cfg["ablation"]["x"] = {"overrides": {"modle": {}}}
    with pytest.raises(VadError, match="modle"):
        C.validate(cfg)
    for bad in ({"paper": {"ped2": 90}}, {"overrides": {}, "paper": {"ped3": 90}},
                {"overrides": {}, "paper": {"ped2": "ninety"}}, {"overrides": {}, "note": ""}):
        cfg = copy.deepcopy(base_config)
        cfg["ablation"] = {"x": bad}
        with pytest.raises(VadError):
            C.validate(cfg)
    cfg = copy.deepcopy(base_config)
    cfg["ablation"] = {"a/b": {"overrides": {}}}  # a variant is a path component (wildcard)
    with pytest.raises(VadError):
        C.validate(cfg)
    cfg["ablation"] = {"x": {"overrides": {}}}
    assert C.validate(cfg)["ablation"]["x"] == {"overrides": {}, "source": "",
                                                "paper": dict.fromkeys(PAPERS)}  # defaults: no number


@pytest.mark.parametrize("preset", ["cpu", "gpu"])
@pytest.mark.parametrize("dataset", ["demo", *PAPERS])
def test_every_shipped_variant_resolves_and_builds(base_config, dataset, preset):
    cfg = copy.deepcopy(base_config)
    cfg["preset"] = preset
    for name, v in cfg["ablation"].items():
        r = C.resolve(cfg, dataset, v["overrides"])
        assert r["model"]["name"] == v["overrides"]["model"]["name"], name
        model = build_model(r["model"], in_frames=4, channels=1)
        assert all(getattr(model.cfg, k) == val for k, val in v["overrides"]["model"].items() if k != "name"), name
        assert v["source"].startswith(("seed 000", "seed 002")), name


def test_shipped_variants_map_the_papers_rows(base_config):
    abl = base_config["ablation"]
    model = {n: v["overrides"]["model"] for n, v in abl.items()}
    # seed 002 Table 2: the three fusions, numbers on all three datasets
    assert [model[n]["fusion"] for n in ("amsrc_baseline", "amsrc_add", "amsrc")] == ["none", "add", "gated"]
    # seed 000 Table 2 (Ped2 only): E_phi | E_theta | FFRP | L_align | MGSM
    rows = {"mgsm_app": ("appearance", False, None), "mgsm_motion": ("motion", False, None),
            "mgsm_joint": ("both", False, 0.0), "mgsm_joint_align": ("both", False, None),
            "mgsm_app_memory": ("appearance", True, None), "mgsm": ("both", True, None)}
    for n, (streams, memory, align) in rows.items():
        assert (model[n]["streams"], model[n]["memory"], model[n]["skips"]) == (streams, memory, [1, 2, 3]), n
        assert abl[n]["overrides"].get("loss", {}).get("lambda_align") == align, n
        assert abl[n]["paper"]["ped2"] is not None, n
    # seed 000 Table 4: the vanilla network (= row 3) with fewer skips, the outermost kept
    for n, skips in (("mgsm_noskip", []), ("mgsm_2sc", [1, 2]), ("mgsm_1sc", [1])):
        assert model[n] == {**model["mgsm_joint"], "skips": skips}, n
        assert abl[n]["overrides"]["loss"] == abl["mgsm_joint"]["overrides"]["loss"]
        assert all(abl[n]["paper"][d] is not None for d in PAPERS), n
    # seed 000 Table 3 (ShanghaiTech only): the full model with three equal memories
    sizes = [int(n.removeprefix("mgsm_mem")) for n in abl if n.startswith("mgsm_mem")]
    assert sizes == [20, 40, 80, 160, 200, 240]
    for n in sizes:
        v = abl[f"mgsm_mem{n}"]
        assert v["overrides"]["model"] == {**model["mgsm"], "memory_sizes": [n] * 3}
        assert v["paper"]["ped2"] is v["paper"]["avenue"] is None and v["paper"]["shanghaitech"] > 75
    # S_f is left out of the score exactly where L_align does not train f_a
    for n, v in abl.items():
        no_align = v["overrides"].get("loss", {}).get("lambda_align") == 0.0
        assert (v["overrides"].get("score", {}).get("w_f") == 0.0) == no_align, n


# --------------------------------------------------------------------------- the table


def _spec_config() -> dict:
    return {
        "datasets": {"ped2": {"layout": "frames", "root": "x"}, "mine": {"layout": "videos", "root": "y"}},
        "presets": {"cpu": {}},
        "ablation": {
            "base": {"overrides": {"model": {"name": "amsrc", "fusion": "none"}}, "source": "T2 r1",
                     "paper": {"ped2": 92.9, "avenue": 90.6}},
            "full": {"overrides": {"model": {"name": "mgsm", "skips": [1]}, "loss": {"lambda_align": 0}},
                     "source": "T2 r6", "paper": {"ped2": 99.6}},
            "same": {"overrides": {}},
        },
    }


def test_describe_switches():
    assert A.describe({"model": {"name": "mgsm", "streams": "motion", "memory": False, "skips": [1, 2]},
                       "loss": {"lambda_align": 0.0}}) == \
        "model.streams=motion model.memory=false model.skips=[1,2] loss.lambda_align=0.0"
    assert A.describe({"model": {"name": "amsrc"}}) == A.describe({}) == "(as configured)"


def _write_auc(path: Path, micro, macro, terms: dict | None = None) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"dataset": "ped2", "auc_micro": micro, "auc_macro": macro, "ap": 0.5}
    if terms is not None:
        body["auc_terms"] = terms
    path.write_text(json.dumps(body))
    return str(path)


def test_collector_on_hand_made_auc_files(tmp_path):
    cfg = C.validate(_spec_config())
    spec = A.spec(cfg, "ped2")
    assert list(spec["variants"]) == ["base", "full", "same"]  # config order
    assert [v["model"] for v in spec["variants"].values()] == ["amsrc", "mgsm", "amsrc"]
    assert spec["variants"]["full"]["paper"] == 99.6 and spec["variants"]["same"]["paper"] is None
    aucs = [_write_auc(tmp_path / v / "auc.json", micro, macro, terms)
            for v, micro, macro, terms in (("base", 0.9, 0.8, {"s_p": 0.9}),
                                           ("full", 0.97531, None, {"s_f": 0.95, "s_p": 0.8712, "s_m": 0.9}),
                                           ("same", None, None, None))]
    out = tmp_path / "ablation.csv"
    df = A.write(spec, aucs, str(out), str(tmp_path / "ablation.png"))
    read = pd.read_csv(out)
    assert list(read.columns) == A.COLUMNS == ["variant", "model", "switches", "source", "auc_micro",
                                               "auc_macro", "paper", "diff", "auc_s_f", "auc_s_p", "auc_s_m", "auc_s_c"]
    assert read["variant"].tolist() == ["base", "full", "same"]
    base, full, same = (read.iloc[i] for i in range(3))
    # percent, like the papers; diff = ours (micro) - paper, in points
    assert (base["auc_micro"], base["auc_macro"], base["paper"]) == (90.0, 80.0, 92.9)
    assert base["diff"] == pytest.approx(-2.9)
    assert full["auc_micro"] == 97.53 and math.isnan(full["auc_macro"]) and full["diff"] == pytest.approx(-2.07)
    assert full["switches"] == "model.skips=[1] loss.lambda_align=0" and full["source"] == "T2 r6"
    assert math.isnan(same["paper"]) and math.isnan(same["diff"]) and math.isnan(same["auc_micro"])
    # each score term alone, in percent; empty where the variant has no such term (or an older auc.json)
    assert math.isnan(base["auc_s_f"]) and base["auc_s_p"] == 90.0
    assert (full["auc_s_f"], full["auc_s_p"], full["auc_s_m"]) == (95.0, 87.12, 90.0)
    assert math.isnan(base["auc_s_m"]) and math.isnan(full["auc_s_c"])
    assert math.isnan(same["auc_s_f"]) and math.isnan(same["auc_s_p"])
    assert (tmp_path / "ablation.png").read_bytes()[:4] == b"\x89PNG"
    assert len(df) == 3
    # another dataset: the paper's number for it, or none
    other = A.spec(cfg, "mine")
    assert all(v["paper"] is None for v in other["variants"].values())


def test_variants_that_coincide_share_one_training(base_config):
    """Ped2's memories have 40 items, so Table 3's 40-item row is the full model: trained once, and
    the table says so; on ShanghaiTech (40/60/80 items) it is a training of its own."""
    ped2 = A.trained_by(base_config, "ped2")
    assert ped2["mgsm_mem40"] == "mgsm"
    assert all(owner == v for v, owner in ped2.items() if v != "mgsm_mem40")
    assert all(owner == v for v, owner in A.trained_by(base_config, "shanghaitech").items())
    switches = A.spec(base_config, "ped2")["variants"]["mgsm_mem40"]["switches"]
    assert switches.endswith("(the same training as mgsm on ped2)")
    # only the training settings count: a variant that differs in its fusion weights trains again
    cfg = copy.deepcopy(base_config)
    cfg["ablation"]["mgsm_mem40"]["overrides"]["score"] = {"w_f": 0.5}
    assert A.trained_by(cfg, "ped2")["mgsm_mem40"] == "mgsm"
    cfg["ablation"]["mgsm_mem40"]["overrides"]["train"] = {"epochs": 3}
    assert A.trained_by(cfg, "ped2")["mgsm_mem40"] == "mgsm_mem40"


def test_collector_names_bad_input(tmp_path):
    spec = A.spec(C.validate(_spec_config()), "ped2")
    good = [_write_auc(tmp_path / v / "auc.json", 0.9, 0.9) for v in spec["variants"]]
    with pytest.raises(VadError, match="3 variants but 2"):
        A.collect(spec, good[:2])
    with pytest.raises(VadError, match="nope.json: file not found"):
        A.collect(spec, [*good[:2], str(tmp_path / "nope.json")])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(VadError, match="bad.json: no auc_micro"):
        A.collect(spec, [*good[:2], str(tmp_path / "bad.json")])


def test_cli_subcommand(tmp_path, capsys):
    cfg = C.validate(_spec_config())
    spec = A.spec(cfg, "ped2")
    aucs = [_write_auc(tmp_path / v / "auc.json", 0.95, 0.9) for v in spec["variants"]]
    out = tmp_path / "t.csv"
    assert cli.main(["ablation", "--params", json.dumps(spec), "--aucs", *aucs, "--out", str(out),
                     "--plot", str(tmp_path / "t.png")]) == 0
    assert pd.read_csv(out)["auc_micro"].tolist() == [95.0] * 3
    # by hand: the spec comes from --configfile and --dataset
    write_config(cfg, tmp_path / "c.yaml")
    assert cli.main(["ablation", "--configfile", str(tmp_path / "c.yaml"), "--dataset", "ped2", "--aucs", *aucs,
                     "--out", str(tmp_path / "u.csv")]) == 0
    assert pd.read_csv(tmp_path / "u.csv").equals(pd.read_csv(out))
    assert cli.main(["ablation", "--params", json.dumps(spec), "--aucs", aucs[0], "--out", str(out)]) == 1
    assert "3 variants but 1" in capsys.readouterr().err


def test_table_so_far_while_the_ablation_runs(tmp_path, capsys):
    """By hand, mid-run: --partial reads the workflow's auc.json paths and leaves the rest empty."""
    cfg = C.validate(_spec_config())
    write_config(cfg, tmp_path / "c.yaml")
    results = tmp_path / "res"
    _write_auc(results / "ped2" / "ablation" / "full" / "auc.json", 0.9, 0.8)
    args = ["ablation", "--configfile", str(tmp_path / "c.yaml"), "--dataset", "ped2", "--results", str(results)]
    assert cli.main(args) == 1   # without --partial a missing variant is an error naming its file
    assert f"{results}/ped2/ablation/base/auc.json: file not found (variant base)" in capsys.readouterr().err
    assert cli.main([*args, "--partial", "--out", str(tmp_path / "so_far.csv")]) == 0
    printed = capsys.readouterr().out.splitlines()   # the table is printed too
    assert printed[0].split() == ["variant", "model", "auc_micro", "auc_macro", "paper", "diff", "auc_s_f", "auc_s_p", "auc_s_m", "auc_s_c"]
    assert [line.split()[0] for line in printed[1:]] == ["base", "full", "same"]
    table = pd.read_csv(tmp_path / "so_far.csv")
    assert table["variant"].tolist() == ["base", "full", "same"]
    assert table["auc_micro"].isna().tolist() == [True, False, True] and table["auc_micro"][1] == 90.0
    assert table["paper"][0] == 92.9 and math.isnan(table["diff"][0])


# --------------------------------------------------------------------------- the Snakemake target


def _dry_jobs(workdir: Path, *targets: str) -> tuple[dict[str, int], list[tuple[str, str | None]]]:
    """A dry run's job counts per rule, and (rule, variant) of every job."""
    counts, text = planned_jobs(workdir, *targets)
    if not counts:
        return {}, []
    jobs = []
    for block in re.split(r"^(?=rule \w+:)", text, flags=re.M)[1:]:
        variant = re.search(r"variant=(\w+)", block)
        jobs.append((re.match(r"rule (\w+):", block)[1], variant[1] if variant else None))
    return counts, jobs


@pytest.mark.slow
def test_dry_run_one_training_per_variant_and_shared_stages(workdir, tiny_config):
    variants = list(tiny_config["ablation"])
    assert len(variants) >= 18
    counts, jobs = _dry_jobs(workdir, "results/demo/ablation.csv")
    main, _ = _dry_jobs(workdir, "results/demo/auc.json")
    # the demo's memories have 40 items, like Ped2's: mgsm_mem40 is mgsm and is not trained twice
    trained = sorted(set(A.trained_by(tiny_config, "demo").values()))
    assert trained == sorted(set(variants) - {"mgsm_mem40"})
    assert counts["ablation_train"] == len(trained)
    assert sorted(v for r, v in jobs if r == "ablation_train") == trained
    assert counts["ablation_infer"] == 2 * len(variants)
    for rule in ("ablation_score", "ablation_frame_scores", "ablation_evaluate"):
        assert counts[rule] == len(variants), rule
    assert counts["ablation"] == 1
    # detection, flow, STCs and labels once, exactly as the main pipeline needs them
    for rule in ("make_demo", "detect", "flow", "stc", "labels"):
        assert counts[rule] == main[rule], rule
    assert counts["stc"] == 2 and counts["detect"] == counts["flow"] == 4
    assert not {"train", "infer", "score", "frame_scores", "evaluate"} & set(counts)


@pytest.mark.slow
def test_ablation_end_to_end_and_per_variant_reruns(workdir, tiny_config):
    keep = ("amsrc_baseline", "mgsm_motion", "mgsm_joint")
    tiny_config["ablation"] = {k: tiny_config["ablation"][k] for k in keep}
    write_config(tiny_config, workdir / "config.yaml")
    snakemake(workdir, "results/demo/ablation.csv")
    res = workdir / "results" / "demo"
    df = pd.read_csv(res / "ablation.csv")
    assert df["variant"].tolist() == list(keep) and df["model"].tolist() == ["amsrc", "mgsm", "mgsm"]
    assert df["paper"].isna().all() and df["diff"].isna().all()  # the papers have no demo numbers
    assert df.loc[2, "switches"].startswith("model.streams=both model.memory=false")
    assert (res / "ablation.png").read_bytes()[:4] == b"\x89PNG"
    for v in keep:
        auc = json.loads((res / "ablation" / v / "auc.json").read_text())
        row = df.set_index("variant").loc[v]
        assert auc["protocol"]["model"]["name"] == row["model"]
        # the table is what each variant measured, as a percentage (a ranking, not a placeholder)
        assert row["auc_micro"] == round(100 * auc["auc_micro"], 2) and row["auc_macro"] == round(100 * auc["auc_macro"], 2)
        assert auc["n_frames"] > 0 and 0 < auc["n_abnormal"] < auc["n_frames"]
        assert (res / "ablation" / v / "train" / "model.pt").is_file()
    # each variant trained with its own settings; the main model was never needed
    joint = json.loads((res / "ablation" / "mgsm_joint" / "auc.json").read_text())["protocol"]
    assert joint["model"]["streams"] == "both" and joint["model"]["memory"] is False
    assert joint["score"]["w_f"] == 0.0
    assert not (res / "train").exists() and not (res / "auc.json").exists()
    motion = pd.read_csv(res / "ablation" / "mgsm_motion" / "train" / "loss.csv")
    assert motion["align"].isna().all() and motion["int"].notna().all()

    # nothing to do again; changing one variant's switches reruns that variant only
    assert _dry_jobs(workdir, "results/demo/ablation.csv") == ({}, [])
    tiny_config["ablation"]["mgsm_motion"]["overrides"]["model"]["skips"] = [1]
    write_config(tiny_config, workdir / "config.yaml")
    counts, jobs = _dry_jobs(workdir, "results/demo/ablation.csv")
    assert {v for r, v in jobs if r.startswith("ablation_")} == {"mgsm_motion"}
    assert counts["ablation_train"] == 1 and counts["ablation"] == 1
    assert not {"detect", "flow", "stc", "make_demo"} & set(counts)
