"""Frames/s of every detection and flow backend on one dataset's frames, at its configured sizes.

Weight-free backends (motion, dis, farneback) run as the workflow runs them. The network backends
run with randomly initialised weights in their real architecture (cost does not depend on the
values): FlowNet2 and RAFT (if torchvision is installed) at the dataset's network input size,
mmdet (if installed) with the configured config, default Cascade R-CNN R101-FPN at 1333x800.
Timing covers the model call on batches of decoded frames, not decoding or writing.

    python benchmarks/bench_backends.py --dataset ped2 --frames 16
    python benchmarks/bench_backends.py --dataset ped2 --device cuda --frames 200
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from vad_pipeline import config as C
from vad_pipeline import flow as FL
from vad_pipeline.datasets import get_video, iter_frames, video_names
from vad_pipeline.detect import mmdet as MM
from vad_pipeline.detect import motion as Mo
from vad_pipeline.flow.flownet2 import FlowNet2
from vad_pipeline.flow.network import TorchFlow, net_size
from vad_pipeline.flow.raft import build_raft
from vad_pipeline.io import write_json


def frames_of(cfg: dict, n: int) -> list[np.ndarray]:
    video = get_video(cfg, "test", video_names(cfg, "test")[0])
    return list(itertools.islice(iter_frames(video), n))


def timed(fn, batches) -> float:
    """Seconds for all batches after one warm-up batch (not counted)."""
    fn(batches[0])
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for b in batches:
        fn(b)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def flow_rates(cfg: dict, frames: list[np.ndarray], device: str, batch: int, out: dict) -> None:
    gray = [f.mean(-1).astype(np.uint8) for f in frames]
    for name in ("dis", "farneback"):
        be = FL.factory(name)(cfg["flow"][name])
        secs = timed(lambda b, be=be: be.fn(b[0], b[1]), [([g], [h]) for g, h in zip(gray, gray[1:])])
        out[f"flow/{name}"] = (len(gray) - 1) / secs
    nets = {"flownet2": (FlowNet2, cfg["flow"]["flownet2"]["size"], 64, 0)}
    try:
        nets["raft"] = (lambda: build_raft("large"), cfg["flow"]["raft"]["size"], 8, 128)
    except Exception:  # noqa: BLE001 - torchvision absent: skip RAFT
        pass
    for name, (build, size, mult, minimum) in nets.items():
        try:
            model = build().eval().to(device)
        except Exception as e:  # noqa: BLE001
            print(f"flow/{name}: skipped ({e})")
            continue
        if name == "raft":
            net = model

            def model(a, b, net=net):
                return net(a / 127.5 - 1, b / 127.5 - 1, num_flow_updates=12)[-1]
        tf = TorchFlow(model, torch.device(device), size, mult, minimum)
        pairs = list(zip(frames, frames[1:]))
        batches = [([p for p, _ in pairs[i:i + batch]], [c for _, c in pairs[i:i + batch]])
                   for i in range(0, len(pairs), batch)]
        secs = timed(lambda b, tf=tf: tf(*b), batches)
        h, w = frames[0].shape[:2]
        out[f"flow/{name} {net_size(h, w, size, mult, minimum)}"] = len(pairs) / secs


def detect_rates(cfg: dict, frames: list[np.ndarray], device: str, batch: int, out: dict, tmp: Path) -> None:
    p = cfg["detect"]["motion"]
    bg = np.median(np.stack([Mo._prep(f.mean(-1), p["blur"]) for f in frames]), axis=0).astype(np.float32)

    def motion(fs):
        for f in fs:
            Mo.boxes_from_mask(Mo.foreground_mask(Mo._prep(f.mean(-1).astype(np.float32), p["blur"]), None, bg, p), p)

    out["detect/motion"] = len(frames) / timed(motion, [[f] for f in frames])
    try:
        from mmdet.apis import init_detector
    except ImportError:
        print("detect/mmdet: skipped (mmdet not installed)")
        return
    mp = dict(cfg["detect"]["mmdet"], device=device, batch_size=batch)
    cfg_path = MM.mmdet_config_path(mp["config"])
    model = init_detector(cfg_path, checkpoint=None, device="cpu")
    torch.save({"state_dict": model.state_dict()}, tmp / "random_detector.pth")
    det = MM.MMDetector(dict(mp, checkpoint=str(tmp / "random_detector.pth")))
    batches = [frames[i:i + batch] for i in range(0, len(frames), batch)]
    out[f"detect/mmdet {Path(cfg_path).stem}"] = len(frames) / timed(det, batches)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="demo")
    ap.add_argument("--config", default="config.yaml")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--only", choices=["detect", "flow"])
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    cfg = C.resolve(C.load(a.config), a.dataset)
    frames = frames_of(cfg, a.frames)
    out: dict[str, float] = {}
    tmp = Path(__import__("tempfile").mkdtemp())
    if a.only != "flow":
        detect_rates(cfg, frames, a.device, a.batch, out, tmp)
    if a.only != "detect":
        flow_rates(cfg, frames, a.device, a.batch, out)
    h, w = frames[0].shape[:2]
    print(f"{a.dataset}: {len(frames)} frames of {w}x{h}, device {a.device} "
          f"({torch.cuda.get_device_name() if a.device.startswith('cuda') else platform.processor() or 'cpu'}, "
          f"{torch.get_num_threads()} threads)")
    for k, v in out.items():
        print(f"  {k:45s} {v:10.2f} frames/s  ({1000 / v:9.1f} ms/frame)")
    if a.out:
        write_json(a.out, {"dataset": a.dataset, "device": a.device, "frames": len(frames),
                           "frames_per_s": {k: round(v, 3) for k, v in out.items()}})
    else:
        print(json.dumps({k: round(v, 3) for k, v in out.items()}))


if __name__ == "__main__":
    main()
