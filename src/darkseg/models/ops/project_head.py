"""Projection head of CCDistill: maps a segmenter feature map to L2-normalised content embeddings (training only)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class ProjectHead(nn.Module):
    """Two 1×1 convs with a ReLU between them, then L2 normalisation over channels (§3.1 of CCDistill, after [47]).

    ``forward(feats)`` (B, in_channels, h, w) → (B, out_channels, h, w) with unit-norm vectors at every pixel.
    ``hidden`` defaults to ``in_channels`` (the paper gives only the two layers and the 256-d output). ``batch_norm``
    puts a BatchNorm after the first conv, as the projection head of [47] does: without it the head collapses to
    one constant embedding (every cosine 1), the trivial minimum of L_JS and L_CDC.
    """

    def __init__(self, in_channels: int, out_channels: int = 256, hidden: int | None = None,
                 batch_norm: bool = True) -> None:
        super().__init__()
        hidden = hidden or in_channels
        norm = [nn.BatchNorm2d(hidden)] if batch_norm else []
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 1), *norm, nn.ReLU(inplace=True), nn.Conv2d(hidden, out_channels, 1)
        )

    def forward(self, feats: Tensor) -> Tensor:
        return F.normalize(self.layers(feats), dim=1)
