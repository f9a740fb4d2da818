"""Building blocks shared by the seed models: two-stream encoders and a U-Net decoder.

Four levels; with width w the feature maps of a 32x32 cube are (32, 32, w), (16, 16, 2w),
(8, 8, 4w), (4, 4, 8w) -- w = 64 gives the papers' (64, 128, 256, 512).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def level_widths(width: int, levels: int = 4) -> list[int]:
    return [width * 2**i for i in range(levels)]


class Encoder(nn.Module):
    """``down="pool"``: appearance encoding layer (maxpool, conv, BN, ReLU);
    ``down="stride"``: motion encoding layer (stride-2 conv, BN, ReLU)."""

    def __init__(self, in_ch: int, widths: Sequence[int], down: str = "pool"):
        super().__init__()
        self.inc = nn.Sequential(conv_bn_relu(in_ch, widths[0]), conv_bn_relu(widths[0], widths[0]))
        layers = []
        for cin, cout in zip(widths[:-1], widths[1:]):
            if down == "pool":
                layers.append(nn.Sequential(nn.MaxPool2d(2), conv_bn_relu(cin, cout)))
            elif down == "stride":
                layers.append(conv_bn_relu(cin, cout, stride=2))
            else:
                raise ValueError(f"unknown down-sampling {down!r}")
        self.downs = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.inc(x)]
        for down in self.downs:
            feats.append(down(feats[-1]))
        return feats  # level 1 .. L, the last is the bottleneck


class Decoder(nn.Module):
    """Stride-2 transposed convolutions up to full size; level i concatenates its skip when
    ``i in skips`` (levels counted 1..L-1 from the full-size one)."""

    def __init__(self, widths: Sequence[int], out_ch: int, skips: Sequence[int] = (1, 2, 3)):
        super().__init__()
        self.skips = set(skips)
        self.ups = nn.ModuleList()
        self.convs = nn.ModuleList()
        for level in range(len(widths) - 1, 0, -1):  # from the bottleneck upwards
            cin, cout = widths[level], widths[level - 1]
            self.ups.append(nn.Sequential(nn.ConvTranspose2d(cin, cout, 2, 2), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)))
            both = 2 * cout if level in self.skips else cout
            self.convs.append(nn.Sequential(conv_bn_relu(both, cout), conv_bn_relu(cout, cout)))
        self.out = nn.Conv2d(widths[0], out_ch, 1)

    def forward(self, x: torch.Tensor, feats: Sequence[torch.Tensor | None]) -> torch.Tensor:
        level = len(self.ups)
        for up, conv in zip(self.ups, self.convs):
            x = up(x)
            if level in self.skips:
                x = torch.cat([feats[level - 1], x], dim=1)
            x = conv(x)
            level -= 1
        return torch.tanh(self.out(x))
