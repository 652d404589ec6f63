"""Gradient-reversal layer (GRL) of domain-adversarial training and the DANN ramp of its coefficient.

One implementation for every adversarial method of darkseg (PLDA's pixel-level domain classifier; DANIA/CCDistill).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, alpha: float) -> Tensor:  # noqa: ANN001
        ctx.alpha = alpha
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # noqa: ANN001
        return grad.neg() * ctx.alpha, None


def reverse_gradient(x: Tensor, alpha: float) -> Tensor:
    """Identity forward, gradient × (−alpha) backward: the GRL of Ganin & Lempitsky (DANN), PLDA §III-B."""
    if alpha < 0:
        raise ValueError(f"GRL coefficient must be >= 0, got {alpha}")
    return _ReverseGradient.apply(x, float(alpha))


def dann_coefficient(progress: float, gamma: float = 10.0) -> float:
    """α(p) = 2 / (1 + exp(−γ·p)) − 1 for training progress p in [0, 1], the DANN schedule (wsss-methods.md §3.4)."""
    p = min(max(progress, 0.0), 1.0)
    return 2.0 / (1.0 + math.exp(-gamma * p)) - 1.0
