"""FlowNet2 in plain PyTorch (vad_pipeline.flow.flownet2), the deep flow backends and batched inference."""

from __future__ import annotations

import copy
import logging
import math

import h5py
import numpy as np
import pytest
import torch

from vad_pipeline import flow as FL
from vad_pipeline.accel import Batcher, load_state
from vad_pipeline.flow.flownet2 import FlowNet2, channel_norm, correlation, warp
from vad_pipeline.flow.network import TorchFlow, net_size
from vad_pipeline.flow.raft import build_raft
from vad_pipeline.io import VadError

# --------------------------------------------------------------------------- the three custom ops


def naive_correlation(f1, f2, max_disp, stride):
    b, c, h, w = f1.shape
    n = 2 * (max_disp // stride) + 1
    out = torch.zeros(b, n * n, h, w, dtype=torch.float64)
    for iy in range(n):
        for ix in range(n):
            dy, dx = iy * stride - max_disp, ix * stride - max_disp
            for y in range(h):
                for x in range(w):
                    y2, x2 = y + dy, x + dx
                    if 0 <= y2 < h and 0 <= x2 < w:
                        out[:, iy * n + ix, y, x] = (f1[:, :, y, x].double() * f2[:, :, y2, x2].double()).sum(1) / c
    return out


@pytest.mark.parametrize("max_disp,stride", [(4, 2), (3, 1), (20, 2)])
def test_correlation_matches_a_naive_loop(max_disp, stride):
    g = torch.Generator().manual_seed(0)
    f1, f2 = torch.randn(2, 5, 6, 7, generator=g), torch.randn(2, 5, 6, 7, generator=g)
    got = correlation(f1, f2, max_disp, stride)
    torch.testing.assert_close(got.double(), naive_correlation(f1, f2, max_disp, stride), rtol=1e-5, atol=1e-6)


def test_flownetc_correlation_has_441_channels_and_finds_a_shift():
    f1 = torch.randn(1, 64, 12, 40, generator=torch.Generator().manual_seed(0))
    f2 = torch.roll(f1, shifts=6, dims=-1)  # f2(x + 6) = f1(x): displacement dx = +6, dy = 0
    corr = correlation(f1, f2)
    assert corr.shape == (1, 441, 12, 40)
    best = corr[0, :, 6, 10].argmax().item()
    assert divmod(best, 21) == ((0 + 20) // 2, (6 + 20) // 2)


def naive_warp(img, flow):
    b, c, h, w = img.shape
    out = torch.zeros_like(img, dtype=torch.float64)
    for n in range(b):
        for y in range(h):
            for x in range(w):
                xf = min(max(x + flow[n, 0, y, x].item(), 0.0), w - 1.0)
                yf = min(max(y + flow[n, 1, y, x].item(), 0.0), h - 1.0)
                x0, y0 = math.floor(xf), math.floor(yf)
                x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
                a, bb = xf - x0, yf - y0
                out[n, :, y, x] = ((1 - a) * (1 - bb) * img[n, :, y0, x0] + a * (1 - bb) * img[n, :, y0, x1]
                                   + (1 - a) * bb * img[n, :, y1, x0] + a * bb * img[n, :, y1, x1]).double()
    return out


def test_warp_matches_a_naive_bilinear_loop_with_clamped_borders():
    g = torch.Generator().manual_seed(1)
    img = torch.randn(2, 3, 7, 9, generator=g)
    flow = torch.randn(2, 2, 7, 9, generator=g) * 4  # many samples fall outside: clamped to the border
    torch.testing.assert_close(warp(img, flow).double(), naive_warp(img, flow), rtol=1e-5, atol=1e-5)


def test_warp_by_an_integer_flow_shifts_the_image():
    img = torch.arange(5 * 8, dtype=torch.float32).view(1, 1, 5, 8)
    flow = torch.zeros(1, 2, 5, 8)
    flow[:, 0] = 2.0  # sample 2 px to the right
    torch.testing.assert_close(warp(img, flow)[..., :6], img[..., 2:])
    torch.testing.assert_close(warp(img, torch.zeros(1, 2, 5, 8)), img)


def test_channel_norm():
    x = torch.tensor([[3.0, 0.0], [4.0, 1.0]]).view(1, 2, 1, 2)
    torch.testing.assert_close(channel_norm(x), torch.tensor([[[[5.0, 1.0]]]]))


# --------------------------------------------------------------------------- official state dict


def _conv(name, cin, cout, k=3):
    return {f"{name}.0.weight": (cout, cin, k, k), f"{name}.0.bias": (cout,)}


def _deconv(name, cin, cout):
    return {f"{name}.0.weight": (cin, cout, 4, 4), f"{name}.0.bias": (cout,)}


def _pred(name, cin):
    return {f"{name}.weight": (2, cin, 3, 3), f"{name}.bias": (2,)}


def _up(name, bias):
    return {f"{name}.weight": (2, 2, 4, 4), **({f"{name}.bias": (2,)} if bias else {})}


def _decoder(pred_in, up_bias, inter=None):
    d = {**_deconv("deconv5", 1024, 512), **_deconv("deconv4", 1026, 256),
         **_deconv("deconv3", 770, 128), **_deconv("deconv2", 386, 64)}
    for lvl, cin in pred_in.items():
        d.update(_pred(f"predict_flow{lvl}", cin))
    for lvl in (6, 5, 4, 3):
        d.update(_up(f"upsampled_flow{lvl}_to_{lvl - 1}", up_bias))
    for lvl, (cin, cout) in (inter or {}).items():
        d.update(_conv(f"inter_conv{lvl}", cin, cout))
    return d


def _encoder(first):
    return {**first, **_conv("conv4", 256, 512), **_conv("conv4_1", 512, 512), **_conv("conv5", 512, 512),
            **_conv("conv5_1", 512, 512), **_conv("conv6", 512, 1024), **_conv("conv6_1", 1024, 1024)}


def official_shapes() -> dict[str, tuple]:
    """Key names and shapes of NVIDIA's FlowNet2_checkpoint.pth.tar ``state_dict``, spelled out
    from the flownet2-pytorch model definition (independently of vad_pipeline.flownet2)."""
    full = {6: 1024, 5: 1026, 4: 770, 3: 386, 2: 194}
    c = _encoder({**_conv("conv1", 3, 64, 7), **_conv("conv2", 64, 128, 5), **_conv("conv3", 128, 256, 5),
                  **_conv("conv_redir", 256, 32, 1), **_conv("conv3_1", 473, 256)}) | _decoder(full, True)
    s = _encoder({**_conv("conv1", 12, 64, 7), **_conv("conv2", 64, 128, 5), **_conv("conv3", 128, 256, 5),
                  **_conv("conv3_1", 256, 256)}) | _decoder(full, False)
    sd = _encoder({**_conv("conv0", 6, 64), **_conv("conv1", 64, 64), **_conv("conv1_1", 64, 128),
                   **_conv("conv2", 128, 128), **_conv("conv2_1", 128, 128), **_conv("conv3", 128, 256),
                   **_conv("conv3_1", 256, 256)})
    sd |= _decoder({6: 1024, 5: 512, 4: 256, 3: 128, 2: 64}, True,
                   {5: (1026, 512), 4: (770, 256), 3: (386, 128), 2: (194, 64)})
    fusion = {**_conv("conv0", 11, 64), **_conv("conv1", 64, 64), **_conv("conv1_1", 64, 128),
              **_conv("conv2", 128, 128), **_conv("conv2_1", 128, 128), **_deconv("deconv1", 128, 32),
              **_deconv("deconv0", 162, 16), **_conv("inter_conv1", 162, 32), **_conv("inter_conv0", 82, 16),
              **_pred("predict_flow2", 128), **_pred("predict_flow1", 32), **_pred("predict_flow0", 16),
              **_up("upsampled_flow2_to_1", True), **_up("upsampled_flow1_to_0", True)}
    out = {}
    for prefix, part in (("flownetc", c), ("flownets_1", s), ("flownets_2", s), ("flownets_d", sd),
                         ("flownetfusion", fusion)):
        out |= {f"{prefix}.{k}": v for k, v in part.items()}
    return out


class Opaque:  # anything but tensors and plain containers is refused by weights_only
    pass


@pytest.fixture(scope="session")
def official_ckpt(tmp_path_factory):
    """A checkpoint shaped like NVIDIA's release (random values), saved as its .pth.tar is."""
    g = torch.Generator().manual_seed(0)
    state = {k: torch.randn(shape, generator=g) * 0.01 for k, shape in official_shapes().items()}
    path = tmp_path_factory.mktemp("weights") / "FlowNet2_checkpoint.pth.tar"
    torch.save({"epoch": 1, "best_EPE": 1.5, "state_dict": state}, path)
    return path, state


def test_model_has_the_official_layout():
    model = FlowNet2()
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == official_shapes()
    assert sum(p.numel() for p in model.parameters()) == 162_518_834  # FlowNet2's published size


def test_official_checkpoint_loads_strictly(official_ckpt):
    path, state = official_ckpt
    model = load_state(FlowNet2(), path, "FlowNet2")
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_checkpoint_problems_are_named(tmp_path, official_ckpt):
    _, state = official_ckpt
    with pytest.raises(VadError, match="flow.flownet2.checkpoint is not set.*FlowNet2_checkpoint.pth.tar.*flownet2-pytorch.*Reproduce the papers"):
        load_state(FlowNet2(), "", "FlowNet2", "flow.flownet2.checkpoint")
    with pytest.raises(VadError, match="no file at.*missing.pth"):
        load_state(FlowNet2(), tmp_path / "missing.pth", "FlowNet2")
    partial = dict(state)
    partial.pop("flownetfusion.predict_flow0.bias")
    torch.save({"state_dict": partial}, tmp_path / "partial.pth")
    with pytest.raises(VadError, match="partial.pth.*1 missing keys.*predict_flow0.bias"):
        load_state(FlowNet2(), tmp_path / "partial.pth", "FlowNet2")
    bad = dict(state)
    bad["flownetc.conv1.0.weight"] = torch.zeros(64, 3, 5, 5)
    torch.save({"state_dict": bad}, tmp_path / "bad.pth")
    with pytest.raises(VadError, match="bad.pth: shapes do not match"):
        load_state(FlowNet2(), tmp_path / "bad.pth", "FlowNet2")

    torch.save({"state_dict": state, "extra": Opaque()}, tmp_path / "pickled.pth")
    with pytest.raises(VadError, match="pickled.pth: cannot be read.*weights_only=True"):
        load_state(FlowNet2(), tmp_path / "pickled.pth", "FlowNet2")


def test_forward_gives_a_full_resolution_finite_field():
    torch.manual_seed(0)
    model = FlowNet2().eval()
    with torch.inference_mode():
        a = torch.rand(1, 3, 64, 128) * 255
        out = model(a, torch.roll(a, 2, -1))
    assert out.shape == (1, 2, 64, 128) and torch.isfinite(out).all()


# --------------------------------------------------------------------------- backends


def test_net_size_rounds_to_the_multiple_or_checks_the_configured_one():
    assert net_size(240, 360, [], 64) == (256, 384)
    assert net_size(20, 30, [], 64) == (64, 64)
    assert net_size(240, 360, [128, 192], 64) == (128, 192)
    with pytest.raises(VadError, match="multiples of 64"):
        net_size(240, 360, [100, 192], 64)
    assert net_size(60, 100, [], 8, minimum=128) == (128, 128)  # RAFT's smallest input
    with pytest.raises(VadError, match="at least 128"):
        net_size(60, 100, [64, 128], 8, minimum=128)


def test_torch_flow_rescales_vectors_to_frame_pixels():
    def predict(a, b):  # a constant 1 px to the right, 2 px down, at the network's resolution
        out = torch.zeros(a.shape[0], 2, *a.shape[-2:])
        out[:, 0], out[:, 1] = 1.0, 2.0
        return out

    frames = [np.zeros((60, 90, 3), np.uint8)] * 3
    flows = TorchFlow(predict, torch.device("cpu"), [120, 360], 8)(frames, frames)
    assert len(flows) == 3 and flows[0].shape == (60, 90, 2)
    np.testing.assert_allclose(flows[0][..., 0], 90 / 360, rtol=1e-6)  # network ran 4x wider
    np.testing.assert_allclose(flows[0][..., 1], 2 * 60 / 120, rtol=1e-6)


def test_batcher_halves_the_batch_on_out_of_memory(caplog):
    calls = []

    def fn(items):
        calls.append(len(items))
        if len(items) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return [i * 10 for i in items]

    batcher = Batcher(8, "flow test")
    with caplog.at_level(logging.WARNING):
        assert batcher(fn, list(range(7))) == [i * 10 for i in range(7)]
    assert batcher.batch_size == 2 and calls[:3] == [7, 4, 2]
    assert "batch size lowered to 2" in caplog.text
    assert batcher(fn, [1, 2, 3]) == [10, 20, 30]  # the lowered size is kept


def test_batcher_gives_up_at_one_and_passes_other_errors():
    def oom(items):
        raise RuntimeError("CUDA error: out of memory")

    with pytest.raises(VadError, match="even with a batch of one"):
        Batcher(4, "x")(oom, [1, 2])

    def broken(items):
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        Batcher(4, "x")(broken, [1, 2])


def _square_video(tmp_path, n=4):
    import cv2

    from vad_pipeline.datasets import Video

    rng = np.random.default_rng(0)
    d = tmp_path / "frames" / "sq"
    d.mkdir(parents=True)
    tex = rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)
    for t in range(n):
        img = np.full((60, 100, 3), 90, np.uint8)
        img[20:40, 10 + 4 * t:30 + 4 * t] = tex
        cv2.imwrite(str(d / f"{t:03d}.png"), img)
    return Video(name="sq", split="test", frames=tuple(sorted(d.iterdir())))


def test_flownet2_backend_writes_the_same_format_as_dis(tiny_resolved, tmp_path, official_ckpt):
    cfg = copy.deepcopy(tiny_resolved)
    cfg["flow"]["backend"] = "flownet2"
    cfg["flow"]["flownet2"].update(checkpoint=str(official_ckpt[0]), batch_size=2, device="cpu")
    video = _square_video(tmp_path, n=4)
    FL.flow_video(video, cfg, str(tmp_path / "fn2.h5"))
    cfg["flow"]["backend"] = "dis"
    FL.flow_video(video, cfg, str(tmp_path / "dis.h5"))
    with h5py.File(tmp_path / "fn2.h5") as a, h5py.File(tmp_path / "dis.h5") as b:
        assert a["flow"].shape == b["flow"].shape == (4, 60, 100, 2)
        assert a["flow"].dtype == b["flow"].dtype == np.float16
        assert dict(a.attrs) | {"backend": "dis"} == dict(b.attrs)
        assert a.attrs["backend"] == "flownet2"
        assert not a["flow"][0].any() and np.isfinite(a["flow"][1:]).all()


def test_missing_weights_stop_before_any_output(tiny_resolved, tmp_path):
    cfg = copy.deepcopy(tiny_resolved)
    cfg["flow"]["backend"] = "flownet2"
    out = tmp_path / "f.h5"
    with pytest.raises(VadError, match="flow.flownet2.checkpoint is not set"):
        FL.flow_video(_square_video(tmp_path), cfg, str(out))
    assert not out.exists()


def test_raft_backend_loads_local_weights(tiny_resolved, tmp_path):
    pytest.importorskip("torchvision", reason="RAFT needs the optional torchvision extra ([raft])")
    model = build_raft("small")
    torch.save(model.state_dict(), tmp_path / "raft_small.pth")
    cfg = copy.deepcopy(tiny_resolved)
    cfg["flow"]["backend"] = "raft"
    cfg["flow"]["raft"].update(variant="small", checkpoint=str(tmp_path / "raft_small.pth"),
                               iterations=2, device="cpu", batch_size=2)
    FL.flow_video(_square_video(tmp_path, n=3), cfg, str(tmp_path / "raft.h5"))
    with h5py.File(tmp_path / "raft.h5") as f:
        assert f["flow"].shape == (3, 60, 100, 2) and f.attrs["backend"] == "raft"
    cfg["flow"]["raft"]["variant"] = "large"  # small weights into the large model: refused
    with pytest.raises(VadError, match="raft_small.pth: not a RAFT-large checkpoint"):
        FL.flow_video(_square_video(tmp_path / "2", n=3), cfg, str(tmp_path / "raft2.h5"))
