"""Knowledge-distillation distances D(student, teacher) of Eq. (7): DIST, KL and MSE.

Every loss detaches the teacher and computes in float32 (safe under autocast). 4-D inputs (B, C, H, W) are
flattened to rows = B·H·W pixels, columns = C channels; 2-D inputs (N, C) are used as they are.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def _rows(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B·H·W, C) float32; (N, C) unchanged apart from the dtype."""
    if x.dim() == 4:
        x = x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])
    elif x.dim() != 2:
        raise ValueError(f"expected a (N, C) or (B, C, H, W) tensor, got shape {tuple(x.shape)}")
    return x.float()


def _pair(student: Tensor, teacher: Tensor) -> tuple[Tensor, Tensor]:
    if student.shape != teacher.shape:
        raise ValueError(f"student {tuple(student.shape)} and teacher {tuple(teacher.shape)} shapes differ")
    return _rows(student), _rows(teacher.detach())


def pearson(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """Row-wise Pearson correlation (cosine of mean-centred rows, eps in the denominator), diffkd.md §4."""
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


def dist_loss(student: Tensor, teacher: Tensor, beta: float = 1.0, gamma: float = 1.0, tau: float = 1.0) -> Tensor:
    """DIST: τ²·(β·inter + γ·intra-class Pearson relation loss) of softmax(·/τ) over channels, diffkd.md §4.

    The τ² factor follows the DIST code (it is absent from the paper's pseudocode); τ = 1 makes it a no-op.
    """
    s, t = _pair(student, teacher)
    ys, yt = F.softmax(s / tau, dim=1), F.softmax(t / tau, dim=1)
    inter = 1.0 - pearson(ys, yt).mean()
    intra = 1.0 - pearson(ys.t(), yt.t()).mean()
    return tau**2 * (beta * inter + gamma * intra)


def kl_loss(student: Tensor, teacher: Tensor, tau: float = 1.0) -> Tensor:
    """Pixel-wise KL(softmax(t/τ) ‖ softmax(s/τ)) over channels, ×τ², averaged over pixels (Table 2(a) "KL")."""
    s, t = _pair(student, teacher)
    kl = F.kl_div(F.log_softmax(s / tau, dim=1), F.log_softmax(t / tau, dim=1), reduction="sum", log_target=True)
    return tau**2 * kl / s.shape[0]


def mse_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """Element-wise mean squared error (Table 2(a) "MSE")."""
    s, t = _pair(student, teacher)
    return F.mse_loss(s, t)


def kd_distance(name: str, student: Tensor, teacher: Tensor, tau: float = 1.0) -> Tensor:
    """The distance D of Eq. (7) of DGKD-WLSS selected by name: "dist", "kl" or "mse" (τ unused by MSE)."""
    if name == "dist":
        return dist_loss(student, teacher, tau=tau)
    if name == "kl":
        return kl_loss(student, teacher, tau=tau)
    if name == "mse":
        return mse_loss(student, teacher)
    raise ValueError(f"unknown KD distance {name!r}; allowed: dist, kl, mse")


__all__ = ["dist_loss", "kd_distance", "kl_loss", "mse_loss", "pearson"]
