"""The AMSRC seed model and its loss terms (vad_pipeline.models)."""

from __future__ import annotations

import math

import pytest
import torch

from vad_pipeline.io import VadError
from vad_pipeline.models import build_model
from vad_pipeline.models import losses as L
from vad_pipeline.models.amsrc import AMSRC, AMSRCConfig
from vad_pipeline.models.blocks import Decoder, level_widths

T, S = 4, 16

pytestmark = pytest.mark.usefixtures("one_thread")


def _model(width=4, channels=3, fusion="gated", skips=(1, 2, 3)) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model({"name": "amsrc", "width": width, "fusion": fusion, "skips": list(skips)},
                       in_frames=T, channels=channels)


def _inputs(channels=3, batch=2, size=S) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    frames = torch.rand(batch, T * channels, size, size, generator=g) * 2 - 1
    flows = torch.randn(batch, 2 * T, size, size, generator=g)
    return frames, flows


# --------------------------------------------------------------------------- AMSRC


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("fusion", ["gated", "add"])
def test_output_shapes(channels, fusion):
    model = _model(channels=channels, fusion=fusion)
    out = model(*_inputs(channels))
    w = 4
    assert out["pred"].shape == (2, channels, S, S)
    assert out["f_a"].shape == (2, 8 * w, S // 8, S // 8)
    assert out["f_m"].shape == out["f_a"].shape
    assert out["pred"].abs().max() <= 1.0  # tanh output, like the frames in [-1, 1]


def test_output_shapes_32_pixels():
    model = _model(width=4, channels=1)
    out = model(*_inputs(1, size=32))
    assert out["pred"].shape == (2, 1, 32, 32)
    assert out["f_a"].shape == (2, 32, 4, 4)


def test_level_widths():
    assert level_widths(4) == [4, 8, 16, 32]
    assert level_widths(64) == [64, 128, 256, 512]


def test_fusion_none_has_no_motion_stream():
    model = _model(fusion="none")
    assert model.mot_enc is None
    out = model(*_inputs())
    assert out["f_m"] is None
    assert out["pred"].shape == (2, 3, S, S)
    # the prediction does not depend on the flows at all
    model.eval()
    frames, flows = _inputs()
    with torch.no_grad():
        a = model(frames, flows)["pred"]
        b = model(frames, torch.zeros_like(flows))["pred"]
    torch.testing.assert_close(a, b)
    n_none = sum(p.numel() for p in model.parameters())
    assert n_none < sum(p.numel() for p in _model(fusion="gated").parameters())


def _bottleneck_into_decoder(model, frames, flows):
    """Run the model, capturing the fused bottleneck the decoder receives."""
    seen = {}

    def hook(_module, args):
        seen["fused"] = args[0].detach().clone()

    handle = model.decoder.register_forward_pre_hook(hook)
    try:
        with torch.no_grad():
            out = model(frames, flows)
    finally:
        handle.remove()
    return out, seen["fused"]


@pytest.mark.parametrize("fusion", ["gated", "add", "none"])
def test_fusion_formula(fusion):
    model = _model(fusion=fusion).eval()
    frames, flows = _inputs()
    out, fused = _bottleneck_into_decoder(model, frames, flows)
    f_a, f_m = out["f_a"], out["f_m"]
    # f_a and f_m are what the two encoders produce on their own
    with torch.no_grad():
        torch.testing.assert_close(f_a, model.app_enc(frames)[-1])
        if f_m is not None:
            torch.testing.assert_close(f_m, model.mot_enc(flows)[-1])
    expected = {
        "gated": lambda: torch.sigmoid(f_a) * f_m + f_a,
        "add": lambda: f_a + f_m,
        "none": lambda: f_a,
    }[fusion]()
    torch.testing.assert_close(fused, expected)
    if fusion == "gated":
        assert not torch.allclose(fused, f_a + f_m)  # the gate does something


def test_motion_changes_gated_prediction():
    model = _model(fusion="gated").eval()
    frames, flows = _inputs()
    with torch.no_grad():
        a = model(frames, flows)["pred"]
        b = model(frames, flows * 3)["pred"]
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("skips", [[], [1], [2], [1, 3], [1, 2, 3]])
def test_skips_subset(skips):
    model = _model(skips=skips)
    out = model(*_inputs())
    assert out["pred"].shape == (2, 3, S, S)
    # the decoder's conv at level l takes the skip's channels only when l is in skips
    widths = level_widths(4)
    for conv, level in zip(model.decoder.convs, (3, 2, 1), strict=True):
        cout = widths[level - 1]
        assert conv[0][0].in_channels == (2 * cout if level in skips else cout)


def test_decoder_reads_only_the_skips_it_uses():
    widths = level_widths(4)
    x = torch.randn(2, widths[-1], 2, 2)
    feats = [torch.randn(2, widths[0], 16, 16), torch.randn(2, widths[1], 8, 8), torch.randn(2, widths[2], 4, 4)]
    dec = Decoder(widths, 3, skips=[]).eval()
    assert dec(x, [None, None, None]).shape == (2, 3, 16, 16)
    dec = Decoder(widths, 3, skips=[2]).eval()
    with torch.no_grad():
        a = dec(x, [None, feats[1], None])
        b = dec(x, [None, feats[1] + 1, None])
    assert a.shape == (2, 3, 16, 16)
    assert not torch.allclose(a, b)


def test_backward_reaches_both_encoders():
    model = _model(fusion="gated")
    frames, flows = _inputs()
    out = model(frames, flows)
    loss = L.intensity(out["pred"], frames[:, :3]).mean() + L.cosine_distance(out["f_a"], out["f_m"]).mean()
    loss.backward()
    for name in ("app_enc", "mot_enc", "decoder"):
        grads = [p.grad for p in getattr(model, name).parameters()]
        assert all(g is not None for g in grads), name
        assert any(g.abs().sum() > 0 for g in grads), name


def test_unknown_model_and_fusion():
    with pytest.raises(VadError, match="nope"):
        build_model({"name": "nope", "width": 4, "fusion": "gated", "skips": [1]}, T, 3)
    with pytest.raises(ValueError, match="concat"):
        AMSRC(AMSRCConfig(fusion="concat"))


# --------------------------------------------------------------------------- losses


def test_intensity():
    x = torch.rand(3, 2, 5, 5)
    torch.testing.assert_close(L.intensity(x, x), torch.zeros(3))
    pred = torch.zeros(2, 1, 1, 2)
    target = torch.tensor([[[[0.0, 2.0]]], [[[1.0, 1.0]]]])
    torch.testing.assert_close(L.intensity(pred, target), torch.tensor([2.0, 1.0]))
    assert L.intensity(target, pred).shape == (2,)


def test_gradient():
    x = torch.rand(3, 1, 6, 6)
    torch.testing.assert_close(L.gradient(x, x), torch.zeros(3))
    # a constant offset has the same gradients: no gradient loss
    torch.testing.assert_close(L.gradient(x + 5.0, x), torch.zeros(3), atol=1e-5, rtol=0)
    pred = torch.zeros(1, 1, 2, 2)
    ramp_x = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])   # |dx| = 1 everywhere, dy = 0
    torch.testing.assert_close(L.gradient(pred, ramp_x), torch.tensor([1.0]))
    ramp_y = torch.tensor([[[[0.0, 0.0], [3.0, 3.0]]]])   # |dy| = 3, dx = 0
    torch.testing.assert_close(L.gradient(pred, ramp_y), torch.tensor([3.0]))
    # the sign of the gradient does not matter, only its magnitude
    torch.testing.assert_close(L.gradient(ramp_x, 1 - ramp_x), torch.tensor([0.0]))


def test_cosine_distance():
    a = torch.randn(4, 8, 2, 2)
    torch.testing.assert_close(L.cosine_distance(a, a), torch.zeros(4), atol=1e-6, rtol=0)
    torch.testing.assert_close(L.cosine_distance(a, 2.5 * a), torch.zeros(4), atol=1e-6, rtol=0)
    torch.testing.assert_close(L.cosine_distance(a, -a), torch.full((4,), 2.0))
    e1 = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    e2 = torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    torch.testing.assert_close(L.cosine_distance(e1, e2), torch.tensor([1.0]))
    diag = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    torch.testing.assert_close(L.cosine_distance(e1, diag), torch.tensor([1 - 1 / math.sqrt(2)]))
    # a zero feature map stays finite
    assert torch.isfinite(L.cosine_distance(torch.zeros(1, 4), e1)).all()
