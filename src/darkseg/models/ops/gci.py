"""Global Cue Injection (ssss.md §2 step 3)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from darkseg.models.ops.init import conv_bn_relu, kaiming_init


class GCI(nn.Module):
    """AdaIN-like modulation of shallow features by max-pooled deep cues (ssss.md §2 step 3).

    ``forward(deep, skip)``: γ, β = split(max_xy(fc_deep(deep))); out = fc_cls(ReLU(fc_skip(skip)·(1 + γ) + β)).
    """

    def __init__(self, deep_channels: int = 256, skip_channels: int = 256, out_channels: int = 256) -> None:
        super().__init__()
        self.fc_deep = conv_bn_relu(deep_channels, 2 * out_channels, 1)
        self.fc_skip = nn.Sequential(
            nn.Conv2d(skip_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels, affine=False),
        )
        self.fc_cls = conv_bn_relu(out_channels, out_channels, 1)
        kaiming_init(self)

    def forward(self, deep: Tensor, skip: Tensor) -> Tensor:
        gamma, beta = self.fc_deep(deep).amax(dim=(2, 3), keepdim=True).chunk(2, dim=1)
        return self.fc_cls(F.relu(self.fc_skip(skip) * (1 + gamma) + beta))
