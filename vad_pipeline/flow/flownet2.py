"""FlowNet2 (Ilg et al., 2017) in plain PyTorch: no custom CUDA or C++ extension.

The module tree and parameter names follow NVIDIA's flownet2-pytorch release, so its
``FlowNet2_checkpoint.pth.tar`` (``state_dict`` key) loads strictly. The three operations that
release implements as CUDA kernels are tensor operations here: :func:`correlation` (FlowNetC's
cost volume), :func:`channel_norm` and :func:`warp` (its ``Resample2d``). :func:`make_flownet2`
is the flow backend ``flownet2``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vad_pipeline.accel import load_state, pick_device
from vad_pipeline.flow import FlowBackend
from vad_pipeline.flow.network import TorchFlow

RGB_MAX = 255.0
DIV_FLOW = 20.0  # the networks predict flow / 20


def correlation(f1: torch.Tensor, f2: torch.Tensor, max_disp: int = 20, stride: int = 2) -> torch.Tensor:
    """Cost volume: mean over channels of ``f1(x) * f2(x + d)`` for every displacement ``d``.

    Displacements run over ``-max_disp..max_disp`` in steps of ``stride`` on both axes; output
    channel ``iy * n + ix`` holds displacement (dy, dx) = (iy, ix) * stride - max_disp, with
    ``f2`` zero outside the image (FlowNetC: kernel 1, pad 20, stride1 1, stride2 2 -> 441 channels).
    """
    h, w = f1.shape[-2:]
    f2p = F.pad(f2, [max_disp] * 4)
    offsets = range(0, 2 * max_disp + 1, stride)
    return torch.stack(
        [(f1 * f2p[:, :, oy:oy + h, ox:ox + w]).mean(1) for oy in offsets for ox in offsets], dim=1
    )


def channel_norm(x: torch.Tensor) -> torch.Tensor:
    """Euclidean norm over channels, keeping a channel axis of 1."""
    return x.pow(2).sum(1, keepdim=True).sqrt()


def warp(img: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Bilinear sample of ``img`` at ``(x + u, y + v)``, coordinates clamped to the image border."""
    b, _, h, w = img.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, device=img.device, dtype=img.dtype),
        torch.arange(w, device=img.device, dtype=img.dtype), indexing="ij",
    )
    gx = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack([gx, gy], dim=-1)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _conv(cin: int, cout: int, k: int = 3, stride: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, bias=True)]
    if act:
        layers.append(nn.LeakyReLU(0.1, inplace=True))
    return nn.Sequential(*layers)


def _deconv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=True), nn.LeakyReLU(0.1, inplace=True))


def _predict(cin: int) -> nn.Conv2d:
    return nn.Conv2d(cin, 2, 3, 1, 1, bias=True)


def _up_flow(bias: bool) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(2, 2, 4, 2, 1, bias=bias)


class _Refiner(nn.Module):
    """The shared decoder of FlowNetC/S/SD: predict at 1/64, upsample, concatenate, repeat to 1/4.

    ``inter`` adds SD's intermediate 3x3 convolution before each prediction.
    """

    def _add_decoder(self, flow_bias: bool, inter: bool) -> None:
        self.inter = inter
        self.deconv5, self.deconv4 = _deconv(1024, 512), _deconv(1026, 256)
        self.deconv3, self.deconv2 = _deconv(770, 128), _deconv(386, 64)
        concat = {5: 1026, 4: 770, 3: 386, 2: 194}
        if inter:
            for lvl, cout in zip((5, 4, 3, 2), (512, 256, 128, 64)):
                setattr(self, f"inter_conv{lvl}", _conv(concat[lvl], cout, act=False))
            pred_in = {6: 1024, 5: 512, 4: 256, 3: 128, 2: 64}
        else:
            pred_in = {6: 1024, **concat}
        for lvl, cin in pred_in.items():
            setattr(self, f"predict_flow{lvl}", _predict(cin))
        for lvl in (6, 5, 4, 3):
            setattr(self, f"upsampled_flow{lvl}_to_{lvl - 1}", _up_flow(flow_bias))

    def _decode(self, skips: dict[int, torch.Tensor], top: torch.Tensor) -> torch.Tensor:
        """``skips``: encoder features at levels 5..2; ``top``: level 6. Returns flow at level 2."""
        flow = self.predict_flow6(top)
        feat = top
        for lvl in (5, 4, 3, 2):
            up = getattr(self, f"upsampled_flow{lvl + 1}_to_{lvl}")(flow)
            feat = torch.cat((skips[lvl], getattr(self, f"deconv{lvl}")(feat), up), 1)
            head = getattr(self, f"inter_conv{lvl}")(feat) if self.inter else feat
            flow = getattr(self, f"predict_flow{lvl}")(head)
        return flow


class FlowNetC(_Refiner):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = _conv(3, 64, 7, 2), _conv(64, 128, 5, 2)
        self.conv3, self.conv_redir = _conv(128, 256, 5, 2), _conv(256, 32, 1)
        self.conv3_1 = _conv(32 + 441, 256)
        self.conv4, self.conv4_1 = _conv(256, 512, stride=2), _conv(512, 512)
        self.conv5, self.conv5_1 = _conv(512, 512, stride=2), _conv(512, 512)
        self.conv6, self.conv6_1 = _conv(512, 1024, stride=2), _conv(1024, 1024)
        self._add_decoder(flow_bias=True, inter=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a2 = self.conv2(self.conv1(x[:, :3]))
        b2 = self.conv2(self.conv1(x[:, 3:]))
        a3, b3 = self.conv3(a2), self.conv3(b2)
        corr = F.leaky_relu(correlation(a3, b3), 0.1)
        c3 = self.conv3_1(torch.cat((self.conv_redir(a3), corr), 1))
        c4 = self.conv4_1(self.conv4(c3))
        c5 = self.conv5_1(self.conv5(c4))
        c6 = self.conv6_1(self.conv6(c5))
        return self._decode({5: c5, 4: c4, 3: c3, 2: a2}, c6)


class FlowNetS(_Refiner):
    def __init__(self, in_ch: int = 12) -> None:
        super().__init__()
        self.conv1, self.conv2 = _conv(in_ch, 64, 7, 2), _conv(64, 128, 5, 2)
        self.conv3, self.conv3_1 = _conv(128, 256, 5, 2), _conv(256, 256)
        self.conv4, self.conv4_1 = _conv(256, 512, stride=2), _conv(512, 512)
        self.conv5, self.conv5_1 = _conv(512, 512, stride=2), _conv(512, 512)
        self.conv6, self.conv6_1 = _conv(512, 1024, stride=2), _conv(1024, 1024)
        self._add_decoder(flow_bias=False, inter=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c2 = self.conv2(self.conv1(x))
        c3 = self.conv3_1(self.conv3(c2))
        c4 = self.conv4_1(self.conv4(c3))
        c5 = self.conv5_1(self.conv5(c4))
        c6 = self.conv6_1(self.conv6(c5))
        return self._decode({5: c5, 4: c4, 3: c3, 2: c2}, c6)


class FlowNetSD(_Refiner):
    """Small-displacement network: stride-1 first layer, 3x3 kernels, intermediate convolutions."""

    def __init__(self) -> None:
        super().__init__()
        self.conv0 = _conv(6, 64)
        self.conv1, self.conv1_1 = _conv(64, 64, stride=2), _conv(64, 128)
        self.conv2, self.conv2_1 = _conv(128, 128, stride=2), _conv(128, 128)
        self.conv3, self.conv3_1 = _conv(128, 256, stride=2), _conv(256, 256)
        self.conv4, self.conv4_1 = _conv(256, 512, stride=2), _conv(512, 512)
        self.conv5, self.conv5_1 = _conv(512, 512, stride=2), _conv(512, 512)
        self.conv6, self.conv6_1 = _conv(512, 1024, stride=2), _conv(1024, 1024)
        self._add_decoder(flow_bias=True, inter=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1 = self.conv1_1(self.conv1(self.conv0(x)))
        c2 = self.conv2_1(self.conv2(c1))
        c3 = self.conv3_1(self.conv3(c2))
        c4 = self.conv4_1(self.conv4(c3))
        c5 = self.conv5_1(self.conv5(c4))
        c6 = self.conv6_1(self.conv6(c5))
        return self._decode({5: c5, 4: c4, 3: c3, 2: c2}, c6)


class FlowNetFusion(nn.Module):
    """Fuses the large- and small-displacement flows at full resolution."""

    def __init__(self) -> None:
        super().__init__()
        self.conv0 = _conv(11, 64)
        self.conv1, self.conv1_1 = _conv(64, 64, stride=2), _conv(64, 128)
        self.conv2, self.conv2_1 = _conv(128, 128, stride=2), _conv(128, 128)
        self.deconv1, self.deconv0 = _deconv(128, 32), _deconv(162, 16)
        self.inter_conv1, self.inter_conv0 = _conv(162, 32, act=False), _conv(82, 16, act=False)
        self.predict_flow2, self.predict_flow1, self.predict_flow0 = _predict(128), _predict(32), _predict(16)
        self.upsampled_flow2_to_1, self.upsampled_flow1_to_0 = _up_flow(True), _up_flow(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c0 = self.conv0(x)
        c1 = self.conv1_1(self.conv1(c0))
        c2 = self.conv2_1(self.conv2(c1))
        cat1 = torch.cat((c1, self.deconv1(c2), self.upsampled_flow2_to_1(self.predict_flow2(c2))), 1)
        flow1 = self.predict_flow1(self.inter_conv1(cat1))
        cat0 = torch.cat((c0, self.deconv0(cat1), self.upsampled_flow1_to_0(flow1)), 1)
        return self.predict_flow0(self.inter_conv0(cat0))


def _up4(x: torch.Tensor, mode: str) -> torch.Tensor:
    if mode == "bilinear":
        return F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)
    return F.interpolate(x, scale_factor=4, mode="nearest")


class FlowNet2(nn.Module):
    """FlowNetC -> FlowNetS -> FlowNetS (large displacements) beside FlowNetSD, then fusion.

    Input: two RGB images in 0..255, (B, 3, H, W) each, H and W multiples of 64. Output: the flow
    from the first to the second image in pixels, (B, 2, H, W) as (u, v).
    """

    def __init__(self) -> None:
        super().__init__()
        self.flownetc = FlowNetC()
        self.flownets_1 = FlowNetS()
        self.flownets_2 = FlowNetS()
        self.flownets_d = FlowNetSD()
        self.flownetfusion = FlowNetFusion()

    def _refine_input(self, x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        warped = warp(x[:, 3:], flow)
        return torch.cat((x, warped, flow / DIV_FLOW, channel_norm(x[:, :3] - warped)), 1)

    def forward(self, img1: torch.Tensor, img2: torch.Tensor) -> torch.Tensor:
        pair = torch.stack((img1, img2), 2)  # B, 3, 2, H, W
        mean = pair.flatten(2).mean(-1)[..., None, None, None]
        pair = (pair - mean) / RGB_MAX
        x = torch.cat((pair[:, :, 0], pair[:, :, 1]), 1)
        flow_c = _up4(self.flownetc(x) * DIV_FLOW, "bilinear")
        flow_s1 = _up4(self.flownets_1(self._refine_input(x, flow_c)) * DIV_FLOW, "bilinear")
        flow_s2 = _up4(self.flownets_2(self._refine_input(x, flow_s1)) * DIV_FLOW, "nearest")
        # The released weights were trained with SD's output divided (not multiplied) by 20 here;
        # fusion expects exactly that input, so it is kept.
        flow_sd = _up4(self.flownets_d(x) / DIV_FLOW, "nearest")
        img1n = x[:, :3]
        fusion_in = torch.cat((
            img1n, flow_sd, flow_s2, channel_norm(flow_sd), channel_norm(flow_s2),
            channel_norm(img1n - warp(x[:, 3:], flow_sd)), channel_norm(img1n - warp(x[:, 3:], flow_s2)),
        ), 1)
        return self.flownetfusion(fusion_in)


def make_flownet2(p: dict) -> FlowBackend:
    device = pick_device(p["device"])
    model = load_state(FlowNet2(), p["checkpoint"], "FlowNet2", "flow.flownet2.checkpoint").eval().to(device)
    return FlowBackend(TorchFlow(model, device, p["size"], 64), gray=False, batch_size=p["batch_size"])
