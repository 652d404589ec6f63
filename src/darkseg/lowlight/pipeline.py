"""The physical steps of the low-light pipeline on batched tensors with per-image parameters.

Functions ending in ``_`` work in place on their first argument and return it. Per-image scalars are
(B, 1, 1, 1) tensors, per-image matrices (B, 3, 3).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

FLOOR = 1e-8  # lower bound before a power, as in MAET and Brooks


def inverse_tone_curve(x: Tensor) -> Tensor:
    """Inverse smoothstep s^-1(x) = 0.5 - sin(asin(1 - 2x) / 3), x clipped to [0, 1] (Brooks et al.; MAET step 1)."""
    return torch.rsub(x, 1.0, alpha=2.0).clamp_(-1.0, 1.0).asin_().mul_(-1.0 / 3.0).sin_().add_(0.5)


def gamma_expand_(x: Tensor, gamma: Tensor) -> Tensor:
    """Inverse gamma max(x, 1e-8)^gamma (MAET step 2)."""
    return x.clamp_min_(FLOOR).log_().mul_(gamma).exp_()


def gamma_compress_(x: Tensor, gamma: Tensor) -> Tensor:
    """Gamma max(x, 1e-8)^(1/gamma) (MAET step 11)."""
    return x.clamp_min_(FLOOR).log_().div_(gamma).exp_()


def forward_matrix(rgb_to_cam: Tensor, gain: Tensor, red: Tensor, blue: Tensor, darkness: Tensor) -> Tensor:
    """sRGB -> dark raw in one matrix: k * g * diag(1/r, 1, 1/b) @ rgb2cam (MAET steps 3, 4 and 6 folded)."""
    wb = torch.stack([1.0 / red, torch.ones_like(red), 1.0 / blue], dim=-1)
    return (darkness * gain)[:, None, None] * wb[:, :, None] * rgb_to_cam


def inverse_matrix(rgb_to_cam: Tensor, red: Tensor, blue: Tensor) -> Tensor:
    """Raw -> linear sRGB in one matrix: inv(rgb2cam) @ diag(r, 1, b) (MAET steps 9 and 10 folded; g is not undone)."""
    wb = torch.stack([red, torch.ones_like(red), blue], dim=-1)
    return torch.linalg.inv(rgb_to_cam) * wb[:, None, :]


def apply_matrix(m: Tensor, x: Tensor, out: Tensor | None = None) -> Tensor:
    """Per-pixel colour transform m @ x for (B, 3, H, W) images and (B, 3, 3) matrices, optionally into ``out``."""
    flat = x.reshape(x.shape[0], 3, -1)
    if out is None:
        return torch.bmm(m, flat).view_as(x)
    torch.bmm(m, flat, out=out.view_as(flat))
    return out


def shot_read_noise_(x: Tensor, shot: Tensor, read: Tensor, normal: Tensor) -> Tensor:
    """Add N(0, max(lambda_shot * x + lambda_read, 1e-8)) given an N(0, 1) field (Brooks et al. 2019; MAET step 7)."""
    std = torch.addcmul(read, x, shot).clamp_min_(FLOOR).sqrt_()
    return x.addcmul_(std, normal)


def quantise_uniform_(x: Tensor, beta: Tensor, signed_uniform: Tensor) -> Tensor:
    """Add U(-1/(255 beta), +1/(255 beta)) given a U(-1, 1) field (MAET step 8)."""
    return x.addcmul_(signed_uniform, 1.0 / (255.0 * beta))


def quantise_round_(x: Tensor, levels: int) -> Tensor:
    """True rounding to ``levels`` steps per unit, round(x * levels) / levels (8 bit for 255)."""
    return x.mul_(levels).round_().div_(levels)


def _bayer_masks(height: int, width: int, like: Tensor) -> Tensor:
    """(3, 1, H, W) 0/1 masks of the R, G, B sites of an RGGB pattern."""
    ys = torch.arange(height, device=like.device)[:, None] % 2
    xs = torch.arange(width, device=like.device)[None, :] % 2
    red, blue = (ys == 0) & (xs == 0), (ys == 1) & (xs == 1)
    return torch.stack([red, ~(red | blue), blue])[:, None].to(like.dtype)


def mosaic(x: Tensor) -> Tensor:
    """RGGB Bayer mosaic of a (B, 3, H, W) raw image into one (B, 1, H, W) plane (Brooks et al. 2019, unprocess.py)."""
    masks = _bayer_masks(x.shape[-2], x.shape[-1], x)
    return (x * masks[:, 0]).sum(dim=1, keepdim=True)


def demosaic_bilinear(m: Tensor) -> Tensor:
    """Bilinear demosaic of an RGGB (B, 1, H, W) plane, normalised at the borders (Brooks et al. 2019 process.py)."""
    if m.shape[-2] < 2 or m.shape[-1] < 2:
        raise ValueError(f"demosaicing needs an image of at least 2x2 pixels, got {tuple(m.shape[-2:])}")
    masks = _bayer_masks(m.shape[-2], m.shape[-1], m)
    rb = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]], dtype=m.dtype, device=m.device)
    g = torch.tensor([[0.0, 1.0, 0.0], [1.0, 4.0, 1.0], [0.0, 1.0, 0.0]], dtype=m.dtype, device=m.device)
    kernels = torch.stack([rb, g, rb])[:, None]
    num = F.conv2d(m * masks[:, 0], kernels, padding=1, groups=3)
    den = F.conv2d(masks.transpose(0, 1), kernels, padding=1, groups=3)
    return num / den
