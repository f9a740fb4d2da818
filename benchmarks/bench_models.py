"""Training and inference throughput (samples/s) of the seed models on random cubes.

For each model (amsrc, mgsm) at the cpu-preset width (16) and the gpu-preset width (64), on grey
and RGB 32x32 cubes with T=4: a training step is ``vad_pipeline.train.train_step`` (bf16 autocast
on CUDA; --compile and --channels-last as train.compile / train.channels_last, CUDA only), an
inference step ``compute_terms`` under inference_mode as ``vad-pipeline infer`` runs it (fp32).
Also printed: each model's FLOPs per sample (torch.utils.flop_counter: convolutions and matrix
products, forward and a whole training step) and the dense matmul GFLOP/s of the device, which
give a compute ceiling, samples/s <= GFLOP/s / training GFLOP per sample. On the CPU the defaults
keep it to about a minute (few iterations; figures are noisy on a busy machine).

    python benchmarks/bench_models.py                       # table + results/bench_models.json
    python benchmarks/bench_models.py --device cuda --compile --channels-last
    python benchmarks/bench_models.py --ablation ped2 --batch 128 --cubes 18853   # per variant

--ablation DATASET times every ablation variant of config.yaml as it resolves on DATASET (its model,
switches, width and colour; variants that share a training are timed once) and, with --cubes (the
dataset's training cubes), estimates each variant's training minutes at its epochs.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from vad_pipeline import config as C
from vad_pipeline.ablation import trained_by
from vad_pipeline.io import write_json
from vad_pipeline.models import build_model
from vad_pipeline.train import compute_terms, pick_device, prepare_model, train_step

T_PAST, SIZE = 4, 32


def cubes(batch: int, channels: int, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random frames in [-1, 1] (B, T+1, C, S, S) and flows (B, T, 2, S, S)."""
    g = torch.Generator().manual_seed(seed)
    app = torch.rand(batch, T_PAST + 1, channels, SIZE, SIZE, generator=g) * 2 - 1
    flow = torch.randn(batch, T_PAST, 2, SIZE, SIZE, generator=g)
    return app.to(device), flow.to(device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rate(fn: Callable[[], object], batch: int, device: torch.device, warmup: int, seconds: float,
         min_iters: int = 2) -> float:
    """Samples/s of ``fn`` (one batch per call) after ``warmup`` calls, timed for at least
    ``seconds`` and ``min_iters`` calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    iters, t0 = 0, time.perf_counter()
    while iters < min_iters or time.perf_counter() - t0 < seconds:
        fn()
        iters += 1
        sync(device)
    return iters * batch / (time.perf_counter() - t0)


def matmul_gflops(device: torch.device, n: int = 2048, repeats: int = 3) -> tuple[float, str]:
    """Best dense n x n matmul rate: fp32 on the CPU, bf16 on CUDA (what autocast trains in)."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    sync(device)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9, str(dtype).removeprefix("torch.")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def count_flops(fn: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def bench_one(cfg: dict, name: str, width: int, color: str, device: torch.device, a: argparse.Namespace) -> dict:
    channels = 1 if color == "gray" else 3
    mcfg = {**cfg["model"], "name": name, "width": width}
    lambdas = {k: cfg["loss"][f"lambda_{k}"] for k in build_model(mcfg, T_PAST, channels).loss_terms}
    tc = {**cfg["train"], "compile": a.compile, "channels_last": a.channels_last}
    cuda = device.type == "cuda"
    amp, channels_last = cuda, a.channels_last and cuda

    torch.manual_seed(0)
    model = build_model(mcfg, T_PAST, channels).to(device)
    fwd = prepare_model(model, tc, device)
    opt = torch.optim.Adam(model.parameters(), lr=tc["lr"])
    row = {"model": name, "width": width, "color": color,
           "params": sum(p.numel() for p in model.parameters())}

    # FLOPs per sample (eval-mode forward; one training step: forward, backward, Adam)
    x2 = cubes(2, channels, device)
    model.eval()
    with torch.no_grad():
        row["fwd_gflop_per_sample"] = count_flops(lambda: compute_terms(model, *x2)) / 2 / 1e9
    model.train()
    row["train_gflop_per_sample"] = count_flops(lambda: train_step(model, opt, *x2, lambdas)) / 2 / 1e9

    xt = cubes(a.batch, channels, device, seed=1)
    model.train()
    row["train_samples_per_s"] = rate(lambda: train_step(fwd, opt, *xt, lambdas, 0.0, amp, channels_last),
                                      a.batch, device, a.warmup, a.seconds)
    xi = cubes(a.infer_batch, channels, device, seed=2)
    model.eval()

    @torch.inference_mode()
    def infer_step() -> None:
        compute_terms(model, *xi)

    row["infer_samples_per_s"] = rate(infer_step, a.infer_batch, device, a.warmup, a.seconds)
    row["train_gflops_achieved"] = row["train_samples_per_s"] * row["train_gflop_per_sample"]
    row["infer_gflops_achieved"] = row["infer_samples_per_s"] * row["fwd_gflop_per_sample"]
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configfile", default="config.yaml", help="model and loss settings (default: %(default)s)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--models", nargs="+", default=["amsrc", "mgsm"])
    p.add_argument("--widths", nargs="+", type=int, default=[16, 64], help="cpu and gpu preset widths")
    p.add_argument("--colors", nargs="+", default=["gray", "rgb"], choices=["gray", "rgb"])
    p.add_argument("--batch", type=int, help="training batch (default: 32 on the CPU, 128 on CUDA)")
    p.add_argument("--infer-batch", type=int, help="inference batch (default: 64 on the CPU, 512 on CUDA)")
    p.add_argument("--seconds", type=float, help="least timed seconds per figure (default: 1 on the CPU, 3 on CUDA)")
    p.add_argument("--warmup", type=int, help="untimed calls first (default: 1 on the CPU, 5 on CUDA)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--compile", action="store_true", help="torch.compile (CUDA only, as train.compile)")
    p.add_argument("--channels-last", action="store_true", help="NHWC (CUDA only, as train.channels_last)")
    p.add_argument("--ceiling", type=float, default=19.0,
                   help="reference training samples/s of amsrc at width 64 (rgb) on the CPU (default: %(default)s, "
                        "the compute ceiling measured on a 2-core machine)")
    p.add_argument("--ablation", metavar="DATASET", help="time the ablation variants as they resolve on DATASET")
    p.add_argument("--cubes", type=int, help="with --ablation: training cubes, for the estimated minutes per variant")
    p.add_argument("--out", default="results/bench_models.json")
    a = p.parse_args(argv)

    device = pick_device(a.device)
    cuda = device.type == "cuda"
    a.batch = a.batch or (128 if cuda else 32)
    a.infer_batch = a.infer_batch or (512 if cuda else 64)
    a.seconds = a.seconds if a.seconds is not None else (3.0 if cuda else 1.0)
    a.warmup = a.warmup if a.warmup is not None else (5 if cuda else 1)
    if a.threads:
        torch.set_num_threads(a.threads)
    full = C.load(a.configfile)
    cfg = {k: copy.deepcopy(full[k]) for k in ("model", "loss", "train")}
    runs = [(name, cfg, name, width, color) for name in a.models for width in a.widths for color in a.colors]
    if a.ablation:
        runs = []
        for variant, owner in trained_by(full, a.ablation).items():
            if owner == variant:
                r = C.resolve(full, a.ablation, full["ablation"][variant].get("overrides", {}))
                runs.append((variant, {k: r[k] for k in ("model", "loss", "train")}, r["model"]["name"],
                             r["model"]["width"], r["stc"]["color"]))

    t_start = time.perf_counter()
    gflops, mm_dtype = matmul_gflops(device)
    where = torch.cuda.get_device_name(device) if cuda else \
        f"{cpu_name()}, {torch.get_num_threads()} threads, {os.cpu_count()} cores"
    print(f"device {device} ({where}); torch {torch.__version__}; dense {mm_dtype} matmul {gflops:.1f} GFLOP/s")
    print(f"train batch {a.batch}, infer batch {a.infer_batch}, >= {a.seconds:g} s per figure"
          + (f", compile {a.compile}, channels_last {a.channels_last}, bf16 autocast in training" if cuda else ""))
    head = (f"{'run':16} {'model':6} {'width':>5} {'color':5} {'params':>9} {'fwd GFLOP':>9} {'step GFLOP':>10} "
            f"{'train/s':>8} {'infer/s':>8} {'GFLOP/s':>8} {'ceiling/s':>9}" + (" train min" if a.cubes else ""))
    print(head + "\n" + "-" * len(head))
    rows = []
    for label, run_cfg, name, width, color in runs:
        r = {"run": label, **bench_one(run_cfg, name, width, color, device, a)}
        r["ceiling_samples_per_s"] = gflops / r["train_gflop_per_sample"]
        if a.cubes:
            r["train_minutes"] = run_cfg["train"]["epochs"] * a.cubes / r["train_samples_per_s"] / 60
        rows.append(r)
        print(f"{label:16} {name:6} {width:>5} {color:5} {r['params']:>9,} {r['fwd_gflop_per_sample']:>9.3f} "
              f"{r['train_gflop_per_sample']:>10.3f} {r['train_samples_per_s']:>8.1f} "
              f"{r['infer_samples_per_s']:>8.1f} {r['train_gflops_achieved']:>8.1f} "
              f"{r['ceiling_samples_per_s']:>9.1f}" + (f" {r['train_minutes']:>9.1f}" if a.cubes else ""), flush=True)
    print("fwd/step GFLOP: per sample, forward / training step (forward + backward); train/s, infer/s: "
          "samples/s; GFLOP/s: achieved in training; ceiling/s: matmul GFLOP/s / step GFLOP"
          + ("; train min: epochs x cubes / train/s" if a.cubes else ""))
    result = {"device": str(device), "device_name": where, "torch": torch.__version__,
              "matmul": {"dtype": mm_dtype, "gflops": gflops},
              "settings": {k: getattr(a, k) for k in ("batch", "infer_batch", "seconds", "warmup", "compile",
                                                      "channels_last")},
              "rows": rows, "seconds_total": round(time.perf_counter() - t_start, 1)}
    ref = next((r for r in rows if r["model"] == "amsrc" and r["width"] == 64 and r["color"] == "rgb"), None)
    if ref is not None and not cuda:
        result["reference"] = {"ceiling_samples_per_s": a.ceiling,
                               "train_samples_per_s": ref["train_samples_per_s"],
                               "fraction": ref["train_samples_per_s"] / a.ceiling}
        print(f"amsrc width 64 rgb training on the CPU: {ref['train_samples_per_s']:.1f} samples/s = "
              f"{100 * ref['train_samples_per_s'] / a.ceiling:.0f}% of the {a.ceiling:g} samples/s reference ceiling "
              f"({ref['fwd_gflop_per_sample']:.2f} GFLOP forward per sample)")
    print(f"{result['seconds_total']} s in all")
    write_json(a.out, result)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
