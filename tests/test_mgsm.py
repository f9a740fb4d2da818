"""The MGSM seed model (vad_pipeline.models.mgsm), its memory losses, training and scoring."""

from __future__ import annotations

import copy
import logging
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from tests import reference as R
from tests.conftest import build_stcs
from vad_pipeline import plots
from vad_pipeline import train as T
from vad_pipeline.cubes import STCDataset
from vad_pipeline.infer import infer
from vad_pipeline.io import VadError
from vad_pipeline.models import build_model
from vad_pipeline.models import losses as L
from vad_pipeline.models.mgsm import MemoryGuidedSuppression, MGSMNet, MGSMNetConfig
from vad_pipeline.stc import INDEX

T_PAST, S = 4, 16

pytestmark = pytest.mark.usefixtures("one_thread")


def _model(width=4, channels=3, memory_sizes=(5, 6, 7)) -> MGSMNet:
    torch.manual_seed(0)
    return build_model({"name": "mgsm", "width": width, "memory_sizes": list(memory_sizes)},
                       in_frames=T_PAST, channels=channels)


def _inputs(channels=3, batch=2, size=S, seed=1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    frames = torch.rand(batch, T_PAST * channels, size, size, generator=g) * 2 - 1
    flows = torch.randn(batch, 2 * T_PAST, size, size, generator=g)
    return frames, flows


def _cube(channels=3, batch=3, size=S) -> tuple[torch.Tensor, torch.Tensor]:
    """An STC batch as compute_terms takes it: (B, T+1, C, S, S) frames, (B, T, 2, S, S) flows."""
    g = torch.Generator().manual_seed(2)
    app = torch.rand(batch, T_PAST + 1, channels, size, size, generator=g) * 2 - 1
    return app, torch.randn(batch, T_PAST, 2, size, size, generator=g)


# --------------------------------------------------------------------------- architecture


@pytest.mark.parametrize("size", [16, 32])
@pytest.mark.parametrize("channels", [1, 3])
def test_output_shapes(size, channels):
    model = _model(channels=channels)
    out = model(*_inputs(channels, size=size))
    w = 4
    assert out["pred"].shape == (2, channels, size, size)
    assert out["pred"].abs().max() <= 1.0  # tanh output, like the frames in [-1, 1]
    assert out["f_a"].shape == out["f_m"].shape == (2, 8 * w, size // 8, size // 8)
    # one suppressor per skip level, at that level's size, a softmax maximum: in [1/N, 1]
    for level, (sup, n) in enumerate(zip(out["suppressors"], (5, 6, 7), strict=True)):
        assert sup.shape == (2, 1, size >> level, size >> level)
        assert (sup >= 1 / n - 1e-6).all() and (sup <= 1).all()
    for k in ("compact", "div"):
        assert out["terms"][k].shape == (2,) and torch.isfinite(out["terms"][k]).all()


def test_levels_and_memories_follow_the_paper():
    model = _model(width=64, memory_sizes=(40, 60, 80))
    feats = model.app_enc(_inputs(size=32, batch=2)[0])
    # (32, 32, 64), (16, 16, 128), (8, 8, 256), (4, 4, 512) for a 32x32 cube
    assert [tuple(f.shape[1:]) for f in feats] == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4)]
    assert [tuple(m.items.shape) for m in model.mgsms] == [(40, 64), (60, 128), (80, 256)]
    # appearance layers pool, motion layers use stride-2 convolutions
    assert isinstance(model.app_enc.downs[0][0], torch.nn.MaxPool2d)
    assert model.mot_enc.downs[0][0].stride == (2, 2)


def test_build_model_and_bad_memory_sizes():
    assert isinstance(_model(), MGSMNet)
    with pytest.raises(ValueError, match="memory_sizes"):
        MGSMNet(MGSMNetConfig(width=4, memory_sizes=[40, 40]))
    with pytest.raises(ValueError, match="memory item"):
        MemoryGuidedSuppression(4, 0)


# --------------------------------------------------------------------------- MGSM (eqs. 2-3)


def _identity_bn(mgsm: MemoryGuidedSuppression) -> float:
    """Eval mode with fresh running statistics: BN(x) = x / sqrt(1 + eps)."""
    mgsm.eval()
    return 1.0 / math.sqrt(1.0 + mgsm.norm.eps)


def test_suppression_with_one_item_is_relu_of_bn():
    mgsm = MemoryGuidedSuppression(3, 1)
    scale = _identity_bn(mgsm)
    feat = torch.randn(2, 3, 4, 5)
    with torch.no_grad():
        out, queries, sup = R.suppress(mgsm, feat)
    torch.testing.assert_close(sup, torch.ones(2, 1, 4, 5))  # softmax over one item: w = 1
    torch.testing.assert_close(out, torch.relu(feat * scale))
    torch.testing.assert_close(queries.norm(dim=2), torch.ones(2, 20))


def test_suppression_matches_hand_computation_with_two_items():
    mgsm = MemoryGuidedSuppression(2, 2)
    scale = _identity_bn(mgsm)
    with torch.no_grad():
        mgsm.items.copy_(torch.tensor([[2.0, 0.0], [1.0, 1.0]]))  # cosine: item length is irrelevant
    # two positions (H=1, W=2): q1 = (3, 0), q2 = (-1, 1)
    feat = torch.tensor([[[[3.0, -1.0]], [[0.0, 1.0]]]])
    with torch.no_grad():
        out, _, sup = R.suppress(mgsm, feat)
    r = 1 / math.sqrt(2)
    # q1: cos = (1, 1/sqrt 2) -> w_max = e^1 / (e^1 + e^r); q2: cos = (-1/sqrt 2, 0) -> 1 / (e^-r + 1)
    lam1 = math.e / (math.e + math.exp(r))
    lam2 = 1 / (math.exp(-r) + 1)
    torch.testing.assert_close(sup, torch.tensor([[[[lam1, lam2]]]]))
    _, w = R.address(mgsm, feat)
    torch.testing.assert_close(w.sum(2), torch.ones(1, 2))
    # q_hat = ReLU(max(w) * BN(q)): q1 -> (3 lam1, 0); q2 -> (ReLU(-lam2), lam2) = (0, lam2)
    expected = torch.tensor([[[[3 * lam1 * scale, 0.0]], [[0.0, lam2 * scale]]]])
    torch.testing.assert_close(out, expected)


def test_read_matches_softmax_addressing_in_values_and_gradients():
    """The module's suppressor exp(cos_max) / sum exp(cos) and its gathered nearest items are eq. 2's
    max softmax and the explicit nearest-two search, gradients included."""
    torch.manual_seed(0)
    mgsm = MemoryGuidedSuppression(6, 9)
    feat = torch.randn(3, 6, 4, 5, requires_grad=True)
    out, queries, sup, nearest = mgsm.read(feat)
    comp, div = L.memory_terms_of_nearest(queries, nearest)
    (sup.square().sum() + out.sum() + comp.sum() - 0.5 * div.sum()).backward()
    got = feat.grad.clone(), mgsm.items.grad.clone()
    feat.grad = mgsm.items.grad = None
    q, w = R.address(mgsm, feat)
    ref_sup = w.amax(dim=2).reshape(3, 1, 4, 5)
    ref_out = torch.relu(ref_sup * mgsm.norm(feat))
    ref_comp, ref_div = R.memory_terms(q, mgsm.unit_items())
    (ref_sup.square().sum() + ref_out.sum() + ref_comp.sum() - 0.5 * ref_div.sum()).backward()
    torch.testing.assert_close(sup, ref_sup)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close((comp, div), (ref_comp, ref_div))
    torch.testing.assert_close(got, (feat.grad, mgsm.items.grad))
    with pytest.raises(ValueError, match="2 memory items"):
        L.memory_terms_of_nearest(queries, nearest[:, :, :1])


def test_zero_feature_is_suppressed_uniformly_and_stays_finite():
    mgsm = MemoryGuidedSuppression(4, 8)
    _identity_bn(mgsm)
    with torch.no_grad():
        out, _, sup = R.suppress(mgsm, torch.zeros(1, 4, 2, 2))  # all-zero positions are common after ReLU
    torch.testing.assert_close(sup, torch.full((1, 1, 2, 2), 1 / 8))
    assert torch.isfinite(out).all()


# --------------------------------------------------------------------------- losses (eqs. 7-8)

ITEMS = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
# sample 0: q = (0, 0): squared distances 1, 4, 18; q = (3, 4): 20, 13, 1
# sample 1: q = (1, 0) twice: 0, 5, 13
QUERIES = torch.tensor([[[0.0, 0.0], [3.0, 4.0]], [[1.0, 0.0], [1.0, 0.0]]])


def test_compactness_by_hand():
    torch.testing.assert_close(R.compactness(QUERIES, ITEMS), torch.tensor([(1 + 1) / 2, 0.0]))
    q = QUERIES.clone().requires_grad_()
    m = ITEMS.clone().requires_grad_()
    R.compactness(q, m)[0].backward()
    # d/dq ||q - m_1||^2 / Q = 2 (q - m_1) / 2
    torch.testing.assert_close(q.grad[0], torch.tensor([[-1.0, 0.0], [0.0, 1.0]]))
    torch.testing.assert_close(q.grad[1], torch.zeros(2, 2))
    # the items get the opposite pull; the unused item none
    torch.testing.assert_close(m.grad, torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, -1.0]]))


def test_diversity_by_hand():
    # mean over queries of ||q - m_1||^2 - ||q - m_2||^2
    torch.testing.assert_close(R.diversity(QUERIES, ITEMS), torch.tensor([((1 - 4) + (1 - 13)) / 2, -5.0]))
    torch.testing.assert_close(R.nearest_sq_distances(QUERIES, ITEMS, 3)[0],
                               torch.tensor([[1.0, 4.0, 18.0], [1.0, 13.0, 20.0]]))
    with pytest.raises(ValueError, match="2 memory items"):
        R.diversity(QUERIES, ITEMS[:1])


def test_memory_terms_from_shared_products_match_the_explicit_distances():
    """The model hands its addressing cosines in as q.m: same terms and gradients as ||q - m||^2."""
    torch.manual_seed(0)
    q = F.normalize(torch.randn(3, 7, 4), dim=2).requires_grad_()
    m = F.normalize(torch.randn(5, 4), dim=1).requires_grad_()
    comp, div = R.memory_terms(q, m, q @ m.T)
    (comp.sum() + 0.3 * div.sum()).backward()
    grads = q.grad.clone(), m.grad.clone()
    q.grad = m.grad = None
    d = (q.unsqueeze(2) - m).pow(2).sum(-1).sort(dim=-1).values   # every distance, by hand
    (d[..., 0].mean(1).sum() + 0.3 * (d[..., 0] - d[..., 1]).mean(1).sum()).backward()
    torch.testing.assert_close(comp, d[..., 0].mean(1))
    torch.testing.assert_close(div, (d[..., 0] - d[..., 1]).mean(1))
    torch.testing.assert_close(grads[0], q.grad)
    torch.testing.assert_close(grads[1], m.grad)


def test_model_memory_terms_are_those_of_its_unit_queries():
    model = _model().eval()
    frames, flows = _inputs()
    with torch.no_grad():
        out = model(frames, flows)
        feats = model.app_enc(frames)[:-1]
        comp = div = 0
        for feat, mgsm in zip(feats, model.mgsms):
            q, _ = R.address(mgsm, feat)
            comp = comp + R.compactness(q, mgsm.unit_items())
            div = div + R.diversity(q, mgsm.unit_items())
    torch.testing.assert_close(out["terms"]["compact"], comp)
    torch.testing.assert_close(out["terms"]["div"], div)
    # unit vectors: ||q - m||^2 = 2 - 2 cos, so each level's terms lie in [0, 4] and [-4, 0]
    assert ((comp >= 0) & (comp <= 12)).all() and ((div <= 0) & (div >= -12)).all()


# --------------------------------------------------------------------------- flow feature replacement


def _decoder_inputs(model, frames, flows):
    seen = {}

    def hook(_module, args):
        seen["x"] = args[0].detach().clone()
        seen["skips"] = [s.detach().clone() if s is not None else None for s in args[1]]

    handle = model.decoder.register_forward_pre_hook(hook)
    try:
        with torch.no_grad():
            out = model(frames, flows)
    finally:
        handle.remove()
    return out, seen["x"], seen["skips"]


def test_motion_bottleneck_replaces_the_appearance_one():
    model = _model().eval()
    frames, flows = _inputs()
    out, x, _ = _decoder_inputs(model, frames, flows)
    with torch.no_grad():
        torch.testing.assert_close(x, model.mot_enc(flows)[-1])
    torch.testing.assert_close(x, out["f_m"])
    assert not torch.allclose(out["f_a"], out["f_m"])
    # changing the flows changes the prediction
    with torch.no_grad():
        assert not torch.allclose(model(frames, flows * 3)["pred"], out["pred"])


def test_frames_reach_the_prediction_only_through_the_skips():
    model = _model().eval()
    frames, flows = _inputs()
    other = _inputs(seed=5)[0]
    out, x, skips = _decoder_inputs(model, frames, flows)
    out2, x2, skips2 = _decoder_inputs(model, other, flows)
    torch.testing.assert_close(x2, x)                         # same bottleneck: flows only
    assert not torch.allclose(out2["pred"], out["pred"])
    assert not torch.allclose(skips2[0], skips[0])
    with torch.no_grad():                                     # ... the skips make the difference
        torch.testing.assert_close(model.decoder(x, skips2), out2["pred"])
        # the appearance bottleneck f_a feeds L_align / S_f only, never the prediction
        model.app_enc.downs[-1][1][0].weight.mul_(3.0)
        out3 = model(frames, flows)
    assert not torch.allclose(out3["f_a"], out["f_a"])
    torch.testing.assert_close(out3["pred"], out["pred"])


# --------------------------------------------------------------------------- terms and gradients


def test_compute_terms_for_mgsm():
    model = _model()
    app, flow = _cube()
    terms = T.compute_terms(model, app, flow)
    assert set(terms) == set(model.loss_terms) == {"int", "gd", "align", "compact", "div"}
    assert all(v.shape == (3,) for v in terms.values())
    model.eval()
    with torch.no_grad():
        terms = T.compute_terms(model, app, flow)
        frames, flows, _ = T.split_cube(app, flow)
        out = model(frames, flows)
    torch.testing.assert_close(terms["align"], L.cosine_distance(out["f_a"], out["f_m"]))  # eq. 6


def test_backward_reaches_both_encoders_and_the_memory():
    model = _model()
    app, flow = _cube()
    loss = sum(v.mean() for v in T.compute_terms(model, app, flow).values())
    loss.backward()
    for name in ("app_enc", "mot_enc", "decoder", "mgsms"):
        grads = [p.grad for p in getattr(model, name).parameters()]
        assert all(g is not None for g in grads), name
        assert any(g.abs().sum() > 0 for g in grads), name
    # the last appearance layer is trained by L_align alone (f_a is not decoded)
    assert model.app_enc.downs[-1][1][0].weight.grad.abs().sum() > 0
    for mgsm in model.mgsms:
        assert mgsm.items.grad.abs().sum() > 0 and mgsm.norm.weight.grad.abs().sum() > 0


def test_prediction_loss_alone_trains_the_memory():
    """max(w) is differentiable in the items: eq. 3 itself, not only L_comp/L_diver, shapes them."""
    model = _model()
    app, flow = _cube()
    T.compute_terms(model, app, flow)["int"].mean().backward()
    for mgsm in model.mgsms:
        assert mgsm.items.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.app_enc.downs[-1].parameters())


# --------------------------------------------------------------------------- train and score


def _mgsm_cfg(resolved: dict) -> dict:
    cfg = copy.deepcopy(resolved)
    cfg["device"] = "cpu"
    cfg["model"].update({"name": "mgsm", "memory_sizes": [4, 6, 8]})
    cfg["train"].update({"threads": 1, "epochs": 2})
    cfg["loss"].update({"lambda_align": 2.0, "lambda_compact": 0.5, "lambda_div": 0.25})
    return cfg


def test_train_and_infer_mgsm(tiny_demo, tmp_path):
    stc = build_stcs(tiny_demo, tmp_path)[0]
    cfg = _mgsm_cfg(tiny_demo)
    model_path = T.train(cfg, stc, str(tmp_path / "run" / "model.pt"), str(tmp_path / "run" / "loss.csv"))
    log = pd.read_csv(tmp_path / "run" / "loss.csv")
    terms = ["int", "gd", "align", "compact", "div"]
    assert log["epoch"].tolist() == [1, 2] and "sim" not in log
    assert np.isfinite(log[["loss", *terms]].to_numpy()).all()
    assert (log["div"] <= 0).all() and (log["compact"] >= 0).all()
    assert log["loss"].iloc[-1] < log["loss"].iloc[0]  # it learns something
    lam = {k: cfg["loss"][f"lambda_{k}"] for k in terms}
    np.testing.assert_allclose(log["loss"], sum(lam[k] * log[k] for k in terms), rtol=1e-4)
    plots.loss_curve(str(tmp_path / "run" / "loss.csv"), str(tmp_path / "loss.png"))  # div < 0: drawn as -div
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"
    model, state = T.load_model(str(model_path), torch.device("cpu"))
    assert isinstance(model, MGSMNet) and model.cfg.memory_sizes == [4, 6, 8]
    assert state["model_cfg"]["name"] == "mgsm"

    df = infer(str(model_path), stc, str(tmp_path / "infer.csv"), cfg)
    ds = STCDataset(stc, flow_scale=cfg["train"]["flow_scale"])
    assert list(df.columns) == INDEX + ["s_f", "s_p"] and len(df) == len(ds)
    assert np.isfinite(df[["s_f", "s_p"]].to_numpy()).all()
    assert df["s_f"].between(0, 2).all() and (df["s_p"] >= 0).all()
    i = len(ds) // 3
    app, flow = ds[i]
    with torch.no_grad():
        t = T.compute_terms(model, app[None], flow[None])
    assert df["s_p"].iloc[i] == pytest.approx(float(t["int"][0]), rel=1e-4)     # S_p: prediction error
    assert df["s_f"].iloc[i] == pytest.approx(float(t["align"][0]), rel=1e-4, abs=1e-6)  # S_f: 1 - cos


def test_train_names_a_missing_lambda(tiny_demo, tmp_path):
    stc = build_stcs(tiny_demo, tmp_path)[0]
    cfg = _mgsm_cfg(tiny_demo)
    del cfg["loss"]["lambda_div"]  # e.g. --params written by an older config
    with pytest.raises(VadError, match="lambda_div"):
        T.train(cfg, stc, str(tmp_path / "model.pt"), str(tmp_path / "loss.csv"))


def test_generic_terms_keep_the_frame_stream_baseline(tiny_demo, tmp_path):
    """amsrc without a motion stream has no 1 - cos term: left out of the loss, NaN in the log
    and in s_f (fuse gives it z = 0), as before the terms became generic."""
    stc = build_stcs(tiny_demo, tmp_path)[0]
    cfg = copy.deepcopy(tiny_demo)
    cfg["device"] = "cpu"
    cfg["model"]["fusion"] = "none"
    cfg["train"].update({"threads": 1, "epochs": 1})
    path = T.train(cfg, stc, str(tmp_path / "model.pt"), str(tmp_path / "loss.csv"))
    log = pd.read_csv(tmp_path / "loss.csv")
    assert log["sim"].isna().all()
    np.testing.assert_allclose(log["loss"], log["int"] + log["gd"], rtol=1e-4)
    df = infer(str(path), stc, str(tmp_path / "infer.csv"), cfg)
    assert df["s_f"].isna().all() and np.isfinite(df["s_p"]).all()


# --------------------------------------------------------------------------- ablation switches
# streams / memory / skips (config.yaml `ablation:` maps the paper's Table 2 and 4 rows to them)


def _variant(streams="both", memory=True, skips=(1, 2, 3), width=4, memory_sizes=(5, 6, 7)) -> MGSMNet:
    torch.manual_seed(0)
    return build_model({"name": "mgsm", "width": width, "memory_sizes": list(memory_sizes), "streams": streams,
                        "memory": memory, "skips": list(skips)}, in_frames=T_PAST, channels=3)


def _param_names(model) -> set[str]:
    return {n for n, _ in model.named_parameters()}


def test_switch_defaults_are_the_full_model(base_config):
    from vad_pipeline import config as C

    cfg = MGSMNetConfig()
    assert (cfg.streams, cfg.memory, cfg.skips) == ("both", True, [1, 2, 3])
    schema = C.load_schema()["$defs"]["model"]["properties"]
    assert [schema[k]["default"] for k in ("streams", "memory", "skips")] == ["both", True, [1, 2, 3]]
    full = _variant()
    # the state dict of the full model is the one it had before the switches existed
    assert {n.split(".")[0] for n in _param_names(full)} == {"app_enc", "mot_enc", "mgsms", "decoder"}
    assert {n for n in _param_names(full) if n.endswith("items")} == {f"mgsms.{i}.items" for i in range(3)}
    # a model file written before the switches (no streams / memory in its model_cfg) is the full model
    old = build_model({"name": "mgsm", "width": 4, "memory_sizes": [5, 6, 7]}, in_frames=T_PAST, channels=3)
    assert old.cfg.streams == "both" and old.cfg.memory and old.cfg.skips == [1, 2, 3]
    old.load_state_dict(full.state_dict())


def test_appearance_only_decodes_the_appearance_feature():
    """seed 000 Table 2 row 1: E_phi alone, frames predict the future frame, plain skips."""
    model = _variant(streams="appearance", memory=False).eval()
    assert model.mot_enc is None and len(model.mgsms) == 0
    assert not any(n.startswith(("mot_enc", "mgsms")) for n in _param_names(model))
    frames, flows = _inputs()
    out, x, skips = _decoder_inputs(model, frames, flows)
    with torch.no_grad():
        feats = model.app_enc(frames)
        torch.testing.assert_close(x, feats[-1])                          # f_a is decoded
        for got, want in zip(skips, feats[:-1], strict=True):             # raw skips, no suppression
            torch.testing.assert_close(got, want)
        torch.testing.assert_close(model(frames, flows * 3 + 1)["pred"], out["pred"])  # flows unused
    assert out["pred"].shape == (2, 3, S, S)
    assert out["f_a"] is None and out["f_m"] is None and "terms" not in out and out["suppressors"] == []
    terms = T.compute_terms(model, *_cube())
    assert set(terms) == {"int", "gd"}                                    # no L_align, no memory terms


def test_motion_only_decodes_the_motion_feature_with_its_own_skips():
    """seed 000 Table 2 row 2: E_theta alone predicts the future frame; skips from E_theta."""
    model = _variant(streams="motion", memory=False).eval()
    assert model.app_enc is None and len(model.mgsms) == 0
    assert not any(n.startswith(("app_enc", "mgsms")) for n in _param_names(model))
    frames, flows = _inputs()
    out, x, skips = _decoder_inputs(model, frames, flows)
    with torch.no_grad():
        feats = model.mot_enc(flows)
        torch.testing.assert_close(x, feats[-1])
        for got, want in zip(skips, feats[:-1], strict=True):
            torch.testing.assert_close(got, want)
        other = _inputs(seed=5)[0]
        torch.testing.assert_close(model(other, flows)["pred"], out["pred"])   # frames unused
    assert out["pred"].shape == (2, 3, S, S) and out["f_a"] is None and out["f_m"] is None
    assert set(T.compute_terms(model, *_cube())) == {"int", "gd"}


def test_without_memory_the_skips_are_plain_and_there_is_no_memory():
    """seed 000 Table 2 rows 3-4 (and Table 4's Vanilla Network): two streams, FFRP, no MGSM."""
    model = _variant(memory=False).eval()
    assert len(model.mgsms) == 0 and not any("mgsms" in n or n.endswith("items") for n in _param_names(model))
    assert sum(p.numel() for p in model.parameters()) < sum(p.numel() for p in _variant().parameters())
    frames, flows = _inputs()
    out, x, skips = _decoder_inputs(model, frames, flows)
    with torch.no_grad():
        torch.testing.assert_close(x, model.mot_enc(flows)[-1])           # FFRP kept
        for got, want in zip(skips, model.app_enc(frames)[:-1], strict=True):
            torch.testing.assert_close(got, want)
    assert "terms" not in out and out["suppressors"] == []
    assert out["f_a"].shape == out["f_m"].shape == (2, 32, S // 8, S // 8)
    terms = T.compute_terms(model, *_cube())
    assert set(terms) == {"int", "gd", "align"} and all(v.shape == (3,) for v in terms.values())


def test_appearance_with_memory():
    """seed 000 Table 2 row 5: E_phi and an MGSM on every skip, no motion stream."""
    model = _variant(streams="appearance", memory=True).eval()
    assert model.mot_enc is None and [tuple(m.items.shape) for m in model.mgsms] == [(5, 4), (6, 8), (7, 16)]
    frames, flows = _inputs()
    out, x, _ = _decoder_inputs(model, frames, flows)
    with torch.no_grad():
        torch.testing.assert_close(x, model.app_enc(frames)[-1])
    assert out["f_m"] is None and len(out["suppressors"]) == 3
    assert set(T.compute_terms(model, *_cube())) == {"int", "gd", "compact", "div"}


@pytest.mark.parametrize("skips", [[], [1], [1, 2], [2, 3], [3, 1]])
@pytest.mark.parametrize("memory", [True, False])
def test_only_the_listed_skips_exist(skips, memory):
    """seed 000 Table 4: w/o SC ([]), variant-1SC ([1]), variant-2SC ([1, 2]): the outermost kept."""
    model = _variant(memory=memory, skips=skips).eval()
    frames, flows = _inputs()
    out, x, passed = _decoder_inputs(model, frames, flows)
    assert out["pred"].shape == (2, 3, S, S)
    # the decoder gets a tensor at exactly the listed levels, None elsewhere ...
    assert [i + 1 for i, t in enumerate(passed) if t is not None] == sorted(skips)
    # ... and its convolutions take the skip's channels only there (level i: width * 2^(i-1))
    first_convs = [c[0][0].in_channels for c in model.decoder.convs]    # levels 3, 2, 1
    assert first_convs == [(2 if lvl in skips else 1) * 4 * 2 ** (lvl - 1) for lvl in (3, 2, 1)]
    # an MGSM (with its memory items) per listed level when memory is on, none otherwise
    assert model.mgsm_levels == (sorted(skips) if memory else [])
    assert [tuple(m.items.shape) for m in model.mgsms] == (
        [((5, 6, 7)[lvl - 1], 4 * 2 ** (lvl - 1)) for lvl in sorted(skips)] if memory else [])
    assert ("terms" in out) == (memory and bool(skips))
    if not skips:  # no skip: the frames reach nothing but f_a (L_align / S_f)
        with torch.no_grad():
            torch.testing.assert_close(model(_inputs(seed=5)[0], flows)["pred"], out["pred"])


def test_bad_switches_are_refused():
    with pytest.raises(ValueError, match="streams"):
        _variant(streams="flow")
    for bad in ([4], [0], [1, 1]):
        with pytest.raises(ValueError, match="skips"):
            _variant(skips=bad)


@pytest.mark.parametrize("switches", [
    {"streams": "appearance", "memory": False}, {"streams": "motion", "memory": False},
    {"streams": "both", "memory": False}, {"streams": "both", "memory": True, "skips": [1]},
])
def test_variants_train_and_infer(tiny_demo, tmp_path, switches, caplog):
    """Each switch setting through the trainer and inference: finite losses; S_f only with a pair."""
    stc = build_stcs(tiny_demo, tmp_path)[0]
    cfg = _mgsm_cfg(tiny_demo)
    cfg["model"].update(switches)
    cfg["train"]["epochs"] = 1
    caplog.set_level(logging.INFO, logger="vad_pipeline.train")
    path = T.train(cfg, stc, str(tmp_path / "model.pt"), str(tmp_path / "loss.csv"))
    log = pd.read_csv(tmp_path / "loss.csv")
    model, _ = T.load_model(str(path), torch.device("cpu"))
    assert (model.cfg.streams, model.cfg.memory) == (switches["streams"], switches["memory"])
    present = {"int", "gd"} | ({"align"} if switches["streams"] == "both" else set()) | (
        {"compact", "div"} if switches["memory"] else set())
    for k in ("int", "gd", "align", "compact", "div"):
        assert log[k].notna().all() == (k in present), k   # a term the variant lacks: NaN in the log
        # ... and left out of the epoch line rather than printed as nan
        assert (f" {k} " in next(r.message for r in caplog.records if "epoch 1/1" in r.message)) == (k in present), k
    lam = {k: cfg["loss"][f"lambda_{k}"] for k in present}
    np.testing.assert_allclose(log["loss"], sum(lam[k] * log[k] for k in present), rtol=1e-4)
    df = infer(str(path), stc, str(tmp_path / "infer.csv"), cfg)
    assert np.isfinite(df["s_p"]).all()
    assert df["s_f"].notna().all() == (switches["streams"] == "both")
