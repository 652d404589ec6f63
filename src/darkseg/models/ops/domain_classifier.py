"""Per-pixel domain classifiers: PLDA's class-conditional one (a shared 1×1-conv trunk and one 2-way head per class)
and MADA's class-wise discriminators (PLDA Tab. VII)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class PixelDomainClassifier(nn.Module):
    """PLDA's multi-head domain discriminator (PLDA §III-C, Fig. 5; wsss-methods.md §3.4).

    Trunk: 1×1 conv ``in_channels``→``hidden[0]``, ReLU, Dropout, 1×1 conv →``hidden[1]``, ReLU, Dropout; then
    ``num_heads`` 1×1 heads ``hidden[1]``→2 (source, target), stored as one conv with 2·num_heads outputs (each head
    keeps its own weights). Xavier init. ``forward(feats)`` (B, C, h, w) → logits (B, num_heads, 2, h, w).
    Put a gradient-reversal layer (``models.ops.grl``) in front of it for adversarial training.
    """

    def __init__(self, in_channels: int, num_heads: int, hidden: tuple[int, int] = (1024, 512),
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.trunk = nn.Sequential(
            nn.Conv2d(in_channels, hidden[0], 1), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Conv2d(hidden[0], hidden[1], 1), nn.ReLU(inplace=True), nn.Dropout(dropout),
        )
        self.heads = nn.Conv2d(hidden[1], 2 * num_heads, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, feats: Tensor) -> Tensor:
        logits = self.heads(self.trunk(feats))
        return logits.view(logits.shape[0], self.num_heads, 2, *logits.shape[-2:])


class ClassWiseDomainClassifiers(nn.Module):
    """MADA's K class-wise domain discriminators at pixel level (Pei et al., AAAI 2018, §3; PLDA Tab. VII).

    Discriminator k (no weights shared with the others) sees the feature weighted by the pixel's probability of class
    k and answers source vs target: per discriminator the trunk of :class:`PixelDomainClassifier` (1×1 conv
    ``in_channels``→``hidden[0]``, ReLU, Dropout, →``hidden[1]``, ReLU, Dropout) and a 1×1 head →2. All K are stored
    together: ``first`` holds every first layer (block k of its output channels = discriminator k, applied as
    W_k(p_k·f) + b_k = p_k·(W_k f) + b_k, so the K weighted copies of the feature are never built), ``rest`` the later
    layers as grouped convs (group k = discriminator k). Each block is Xavier-initialised as a network of its own.
    ``forward(feats (B, C, h, w), probs (B, K, h, w))`` → logits (B, K, 2, h, w). Put a GRL in front of ``feats``.
    """

    def __init__(self, in_channels: int, num_classes: int, hidden: tuple[int, int] = (1024, 512),
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.num_heads = k = num_classes
        self.first = nn.Conv2d(in_channels, k * hidden[0], 1)
        self.rest = nn.Sequential(
            nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Conv2d(k * hidden[0], k * hidden[1], 1, groups=k), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Conv2d(k * hidden[1], 2 * k, 1, groups=k),
        )
        for m in (self.first, *self.rest):
            if isinstance(m, nn.Conv2d):
                for block in m.weight.chunk(k, dim=0):
                    nn.init.xavier_uniform_(block)
                nn.init.zeros_(m.bias)

    def forward(self, feats: Tensor, probs: Tensor) -> Tensor:
        b, k = feats.shape[0], self.num_heads
        h, w = feats.shape[-2:]
        z = F.conv2d(feats, self.first.weight).view(b, k, -1, h, w)
        z = z * probs[:, :, None] + self.first.bias.view(1, k, -1, 1, 1)
        logits = self.rest(z.flatten(1, 2))
        return logits.view(b, k, 2, h, w)
