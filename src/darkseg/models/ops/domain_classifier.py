"""Per-pixel, class-conditional domain classifier of PLDA: a shared 1×1-conv trunk and one 2-way head per class."""

from __future__ import annotations

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
