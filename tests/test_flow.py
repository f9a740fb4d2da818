"""Optical flow per video (vad_pipeline.flow)."""

from __future__ import annotations

import copy

import cv2
import h5py
import numpy as np
import pytest

from tests.reference import read_flow
from vad_pipeline import flow as FL
from vad_pipeline.datasets import Video
from vad_pipeline.io import VadError

H, W = 64, 96
SHIFT = 3


def _frames(n: int = 2) -> list[np.ndarray]:
    """Grey background with a faint texture; a strongly textured 24x24 square moving +3 px in x."""
    rng = np.random.default_rng(0)
    bg = cv2.GaussianBlur(rng.normal(0, 1, (H, W)).astype(np.float32), (0, 0), 4) * 6 + 110
    tex = cv2.GaussianBlur(rng.normal(0, 1, (24, 24)).astype(np.float32), (0, 0), 1.2) * 90 + 150
    out = []
    for t in range(n):
        img = bg.copy()
        x0 = 20 + SHIFT * t
        img[20:44, x0 : x0 + 24] = tex
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


def _video(tmp_path, n: int = 2) -> Video:
    d = tmp_path / "frames" / "sq"
    d.mkdir(parents=True)
    for t, img in enumerate(_frames(n)):
        cv2.imwrite(str(d / f"{t:03d}.png"), img)
    return Video(name="sq", split="train", frames=tuple(sorted(d.iterdir())))


def _cfg(base: dict, **flow) -> dict:
    cfg = copy.deepcopy(base)
    cfg["flow"].update(flow)
    return cfg


def _inside(field: np.ndarray, scale: int = 1) -> np.ndarray:
    """Vectors well inside the square at its position in frame 1 (x 23..47, y 20..44)."""
    y1, y2, x1, x2 = 24 // scale, 40 // scale, 28 // scale, 42 // scale
    return field[y1:y2, x1:x2].reshape(-1, 2).astype(np.float32)


@pytest.mark.parametrize("backend", ["dis", "farneback"])
def test_flow_of_a_shifted_square(tiny_resolved, tmp_path, backend):
    out = tmp_path / "flow" / "sq.h5"
    FL.flow_video(_video(tmp_path), _cfg(tiny_resolved, backend=backend, downscale=1), str(out))
    with h5py.File(out, "r") as f:
        flow = f["flow"]
        assert flow.dtype == np.float16
        assert flow.shape == (2, H, W, 2)
        assert f.attrs["height"] == H and f.attrs["width"] == W and f.attrs["downscale"] == 1
        assert f.attrs["backend"] == backend
        data = flow[:]
    assert not data[0].any()  # no previous frame: zero flow
    v = _inside(data[1])
    assert abs(np.median(v[:, 0]) - SHIFT) < 1.0
    assert abs(np.median(v[:, 1])) < 1.0
    # the static background far from the square hardly moves
    assert np.abs(np.median(data[1][:, :8].reshape(-1, 2), axis=0)).max() < 1.0


def test_downscaled_flow_keeps_full_resolution_vectors(tiny_resolved, tmp_path):
    out = tmp_path / "sq.h5"
    FL.flow_video(_video(tmp_path), _cfg(tiny_resolved, backend="dis", downscale=2), str(out))
    with h5py.File(out, "r") as f:
        assert f["flow"].shape == (2, H // 2, W // 2, 2)
        assert f["flow"].dtype == np.float16
        assert f.attrs["downscale"] == 2
        assert f.attrs["height"] == H and f.attrs["width"] == W
    data = read_flow(str(out), slice(None))
    assert data.dtype == np.float32
    assert not data[0].any()
    v = _inside(data[1], scale=2)
    assert abs(np.median(v[:, 0]) - SHIFT) < 1.0  # still pixels of the full frame, not halved


def test_flow_without_compression(tiny_resolved, tmp_path):
    out = tmp_path / "sq.h5"
    FL.flow_video(_video(tmp_path, n=3), _cfg(tiny_resolved, compression=0), str(out))
    with h5py.File(out, "r") as f:
        assert f["flow"].compression is None
        assert f["flow"].shape[0] == 3
    assert abs(np.median(_inside(read_flow(str(out), 2))[:, 0]) - SHIFT) < 1.5


def test_read_flow_single_frame(tiny_resolved, tmp_path):
    out = tmp_path / "sq.h5"
    FL.flow_video(_video(tmp_path), _cfg(tiny_resolved), str(out))
    one = read_flow(str(out), 1)
    assert one.shape == (H, W, 2) and one.dtype == np.float32
    np.testing.assert_array_equal(one, read_flow(str(out), slice(None))[1])


def test_unknown_backend(tiny_resolved, tmp_path):
    out = tmp_path / "sq.h5"
    with pytest.raises(VadError, match="nope"):
        FL.flow_video(_video(tmp_path), _cfg(tiny_resolved, backend="nope"), str(out))
    assert not out.exists()


def test_failed_run_leaves_no_file(tiny_resolved, tmp_path):
    video = _video(tmp_path, n=3)
    (video.frames[2]).write_bytes(b"broken")
    out = tmp_path / "out" / "sq.h5"
    with pytest.raises(VadError, match="002.png"):
        FL.flow_video(video, _cfg(tiny_resolved), str(out))
    assert not out.exists()
    assert list(out.parent.iterdir()) == []  # no temporary file left behind either


def test_stored_flow_is_at_the_working_size_in_its_pixels():
    field = np.ones((10, 14, 2), np.float32) * np.array([3.0, -1.0], np.float32)
    small = FL.to_stored(field, (10, 14), 2)   # downscale 2: half the field, vectors as they were
    assert small.shape == (5, 7, 2)
    np.testing.assert_allclose(small, field[:5, :7])
    assert FL.to_stored(field, (10, 14), 1) is field
    # a network's full-frame field (20 x 28) stored at a working size of 10 x 14: vectors halved
    big = np.ones((20, 28, 2), np.float32) * np.array([6.0, -2.0], np.float32)
    np.testing.assert_allclose(FL.to_stored(big, (10, 14), 1), field)


def test_quantize_rounds_to_the_quantum_and_keeps_zero_as_is():
    from vad_pipeline.flow import quantize

    x = np.array([0.03, 0.04, -1.26, 3.0], dtype=np.float32)
    np.testing.assert_array_equal(quantize(x, 0.0625), np.array([0.0625 * 0, 0.0625, -1.25, 3.0], np.float16))
    assert quantize(x, 0).dtype == np.float16
    np.testing.assert_allclose(quantize(x, 0), x, atol=1e-3)
