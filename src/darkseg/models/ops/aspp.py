"""Atrous spatial pyramid pooling as used by SSSS (ssss.md §2 step 1)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from darkseg.models.ops.init import conv_bn_relu, kaiming_init


class ASPP(nn.Module):
    """1×1 + three dilated 3×3 branches + image pooling, concat, 1×1 fuse + BN + ReLU + dropout (ssss.md §2 step 1).

    ``rates`` are the dilations of the 3×3 branches (12, 24, 36 at output stride 8). With
    ``freeze_bn_stats`` every BN stays in eval mode (running statistics fixed at their initial values) while its
    affine parameters remain trainable, as in SSSS.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 256,
        rates: tuple[int, ...] = (12, 24, 36),
        dropout: float = 0.5,
        freeze_bn_stats: bool = True,
    ) -> None:
        super().__init__()
        self.freeze_bn_stats = freeze_bn_stats
        self.branches = nn.ModuleList(
            [conv_bn_relu(in_channels, out_channels, 1)]
            + [conv_bn_relu(in_channels, out_channels, 3, dilation=r) for r in rates]
        )
        self.pool = conv_bn_relu(in_channels, out_channels, 1)
        self.project = nn.Sequential(
            conv_bn_relu(out_channels * (len(rates) + 2), out_channels, 1),
            nn.Dropout(dropout),
        )
        kaiming_init(self)
        self.train()

    def train(self, mode: bool = True) -> ASPP:
        super().train(mode)
        if self.freeze_bn_stats:
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        return self

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        pooled = self.pool(x.mean(dim=(2, 3), keepdim=True)).expand(-1, -1, h, w)
        return self.project(torch.cat([b(x) for b in self.branches] + [pooled], dim=1))
