"""Stochastic Gate (ssss.md §2 step 4)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class StochasticGate(nn.Module):
    """Random deep/shallow mixing that keeps E[out] = deep in training, fixed mixing at test (ssss.md §2 step 4).

    Training: b ~ Bernoulli(1 − ψ) per element, drawn from the global torch RNG on every call with the current
    shape; out = b·(deep − ψ·shallow)/(1 − ψ) + (1 − b)·shallow. Eval: out = (1 − ψ)·deep + ψ·shallow.
    """

    def __init__(self, psi: float = 0.3) -> None:
        super().__init__()
        if not 0.0 <= psi < 1.0:
            raise ValueError(f"StochasticGate psi must be in [0, 1), got {psi}")
        self.psi = psi

    def forward(self, deep: Tensor, shallow: Tensor) -> Tensor:
        psi = self.psi
        if not self.training:
            return (1 - psi) * deep + psi * shallow
        keep = torch.rand(deep.shape, device=deep.device, dtype=deep.dtype) >= psi
        return torch.where(keep, (deep - psi * shallow) / (1 - psi), shallow)

    def extra_repr(self) -> str:
        return f"psi={self.psi}"
