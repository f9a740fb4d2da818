"""Flow backend ``raft``: torchvision's RAFT (large or small) from a local weight file."""

from __future__ import annotations

import torch

from vad_pipeline.accel import load_state, pick_device
from vad_pipeline.flow import FlowBackend
from vad_pipeline.flow.network import TorchFlow
from vad_pipeline.io import VadError


def build_raft(variant: str) -> torch.nn.Module:
    """torchvision's RAFT (``large`` or ``small``), untrained: weights come from a local file."""
    try:
        from torchvision.models import optical_flow
    except ImportError as e:
        raise VadError(
            "flow.backend raft needs torchvision (the optional extra: pip install -e '.[raft]')"
        ) from e
    return {"large": optical_flow.raft_large, "small": optical_flow.raft_small}[variant](weights=None, progress=False)


def make_raft(p: dict) -> FlowBackend:
    device = pick_device(p["device"])
    model = load_state(build_raft(p["variant"]), p["checkpoint"], f"RAFT-{p['variant']}", "flow.raft.checkpoint").eval().to(device)
    steps = p["iterations"]

    def predict(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return model(a / 127.5 - 1.0, b / 127.5 - 1.0, num_flow_updates=steps)[-1]

    # RAFT's correlation pyramid needs feature maps of 16 px at 1/8 scale
    return FlowBackend(TorchFlow(predict, device, p["size"], 8, minimum=128), gray=False, batch_size=p["batch_size"])
