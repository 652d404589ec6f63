"""Noise-prediction network ε_θ(x_t, t) of Eq. (5) of DGKD-WLSS (dgkd-official.md §4, diffkd.md §1.1)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def conv_bn(c_in: int, c_out: int, kernel_size: int = 1) -> nn.Sequential:
    """Conv (with bias, 'same' padding) followed by BatchNorm, as in the official DiffKD/DGKD modules."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2), nn.BatchNorm2d(c_out))


class Bottleneck(nn.Module):
    """1×1 C→m, BN, ReLU; 3×3 m→m, BN, ReLU; 1×1 m→C, BN; identity residual without a final ReLU."""

    def __init__(self, channels: int, mid: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn(channels, mid), nn.ReLU(inplace=True),
            conv_bn(mid, mid, 3), nn.ReLU(inplace=True),
            conv_bn(mid, channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class DiffusionDenoiser(nn.Module):
    """ε_θ(x_t, t): learned timestep embedding added per channel, two bottlenecks, 1×1 conv + BN.

    ``bottleneck_ratio`` sets the bottleneck width m = C·ratio: 1.0 is the official DGKD-WLSS network
    (``ScheduledCNNRefine``), 0.25 is DiffKD's. Resolution and channels are preserved.
    """

    def __init__(self, channels: int, bottleneck_ratio: float = 1.0, num_embeddings: int = 1280) -> None:
        super().__init__()
        mid = max(1, int(channels * bottleneck_ratio))
        self.time_embed = nn.Embedding(num_embeddings, channels)
        self.blocks = nn.Sequential(Bottleneck(channels, mid), Bottleneck(channels, mid))
        self.out = conv_bn(channels, channels)

    def forward(self, x: Tensor, t: Tensor | int) -> Tensor:
        """ε̂ = ε_θ(x_t, t), Eq. (5) of DGKD-WLSS; ``t`` is an int or a LongTensor of shape (B,)."""
        if isinstance(t, int):
            emb = self.time_embed.weight[t].expand(x.shape[0], -1)
        else:
            emb = self.time_embed(torch.as_tensor(t, device=x.device).expand(x.shape[0]))
        return self.out(self.blocks(x + emb[:, :, None, None]))


__all__ = ["Bottleneck", "DiffusionDenoiser", "conv_bn"]
