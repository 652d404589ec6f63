"""Pixel-adaptive mask refinement (PAMR) of SSSS (Araslanov & Roth, CVPR 2020), as coded in the reference.

Replicate padding is a clamp of coordinates. The (B, 48, H, W) affinity weights are computed once from shifted views
of the padded image; each propagation step is then one sparse × dense product (a CSR matrix with 48 non-zeros per
pixel times the (B·H·W, C) masks). No (B, C, 48, H, W) neighbour tensor is ever formed.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from darkseg.errors import ConfigError


def neighbour_offsets(dilations: Sequence[int]) -> list[tuple[int, int]]:
    """The 8 offsets {-d, 0, d}^2 minus the centre for each dilation d, SSSS PAMR neighbourhood (ssss.md §3.1)."""
    return [(dy * d, dx * d) for d in dilations for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]


def scale_dilations(dilations: Sequence[int], reference_side: int, side: int) -> tuple[int, ...]:
    """Dilations chosen for a ``reference_side`` mask grid, scaled to a ``side`` grid (rounded, ≥ 1, duplicates
    dropped, order kept): e.g. the official (1, 2, 4, 8, 12, 24) on 81×81 masks become (1, 2, 4, 7) on 24×24."""
    return tuple(dict.fromkeys(max(1, round(d * side / reference_side)) for d in dilations))


def _shift(padded: Tensor, pad: int, offset: tuple[int, int], size: tuple[int, int]) -> Tensor:
    """View of a replicate-padded tensor shifted by offset: value at clamped (y + dy, x + dx) (ssss.md §3.1)."""
    (dy, dx), (h, w) = offset, size
    return padded[..., pad + dy : pad + dy + h, pad + dx : pad + dx + w]


def pamr_weights(image: Tensor, dilations: Sequence[int]) -> Tensor:
    """Neighbour weights softmax_j mean_k -|X_k(i) - X_k(j)| / (1e-8 + 0.1 sigma_k(i)), SSSS PAMR (ssss.md §3.2-4)."""
    size = (image.shape[-2], image.shape[-1])
    pad = max(dilations)
    padded = F.pad(image, [pad] * 4, mode="replicate")
    neighbours = [_shift(padded, pad, off, size) for off in neighbour_offsets(dilations)]
    # Local std over the 9|D| window: the centre counts once per dilation; unbiased (divisor n - 1).
    n = 9 * len(dilations)
    mean = image * len(dilations)
    for v in neighbours:
        mean += v
    mean /= n
    sq = (image - mean).square_().mul_(len(dilations))
    for v in neighbours:
        sq += (v - mean).square_()
    scale = sq.div_(n - 1).sqrt_().mul_(0.1).add_(1e-8)
    logits = image.new_empty(image.shape[0], len(neighbours), *size)
    for j, v in enumerate(neighbours):
        torch.mean((image - v).abs_().div_(scale), dim=1, out=logits[:, j])
    return torch.softmax(logits.neg_(), dim=1)


@functools.lru_cache(maxsize=8)
def _neighbour_columns(
    batch: int, height: int, width: int, dilations: tuple[int, ...], device: torch.device
) -> Tensor:
    """Flat indices (B·H·W·48,) of every pixel's clamped neighbours in a batch, row-major per pixel (int32).

    Cached per device, so a CUDA training step does not copy the indices to the GPU on every call.
    """
    ys = torch.arange(height).view(height, 1)
    xs = torch.arange(width).view(1, width)
    cols = torch.stack(
        [((ys + dy).clamp(0, height - 1) * width + (xs + dx).clamp(0, width - 1)).reshape(-1)
         for dy, dx in neighbour_offsets(dilations)],
        dim=1,
    )
    offsets = torch.arange(batch).view(batch, 1, 1) * (height * width)
    return (cols.unsqueeze(0) + offsets).reshape(-1).to(device=device, dtype=torch.int32)


def pamr_propagate(weights: Tensor, mask: Tensor, dilations: Sequence[int], num_iter: int) -> Tensor:
    """num_iter steps of M_c(i) <- sum_j w(i, j) M_c(j) over replicate-padded neighbours, SSSS PAMR (ssss.md §3.5).

    One step is a sparse (48 non-zeros per row) × dense product: the weights form a block-diagonal CSR matrix over
    the B·H·W pixels (clamped indices = replicate padding) and the masks a (B·H·W, C) matrix. Measured against 48
    shifted ``addcmul_`` per step (benchmarks/bench_pamr.py): 3.5× faster at 24×24 (B=16, C=9), 1.3× at 321×321.
    """
    if mask.device.type == "meta":  # shape inference (e.g. `darkseg profile`): no sparse kernels on meta tensors
        return torch.empty_like(mask)
    batch, channels, height, width = mask.shape
    n = batch * height * width
    k = len(neighbour_offsets(dilations))
    cols = _neighbour_columns(batch, height, width, tuple(dilations), mask.device)
    crow = torch.arange(0, n * k + 1, k, dtype=torch.int32, device=mask.device)
    values = weights.permute(0, 2, 3, 1).reshape(-1).to(mask.dtype)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        operator = torch.sparse_csr_tensor(crow, cols, values, size=(n, n), check_invariants=False)
    x = mask.permute(0, 2, 3, 1).reshape(n, channels)
    for _ in range(num_iter):
        x = operator @ x
    return x.view(batch, height, width, channels).permute(0, 3, 1, 2).contiguous()


class PAMR(nn.Module):
    """Pixel-adaptive mask refinement with fixed local image affinities, SSSS (ssss.md §3).

    No parameters, and no gradients flow through it: SSSS refines detached masks into pseudo labels.
    """

    def __init__(
        self, num_iter: int = 10, dilations: Sequence[int] = (1, 2, 4, 8, 12, 24), dilation_grid: int | None = None
    ) -> None:
        """``dilation_grid``: the mask side ``dilations`` were chosen for; when set, each call scales them to the
        side of the image it refines on (:func:`scale_dilations`)."""
        super().__init__()
        if num_iter < 0:
            raise ConfigError(f"PAMR num_iter must be >= 0, got {num_iter}")
        if not dilations or any(d < 1 for d in dilations):
            raise ConfigError(f"PAMR dilations must be a non-empty list of positive integers, got {list(dilations)}")
        self.num_iter = num_iter
        self.dilations = tuple(int(d) for d in dilations)
        self.dilation_grid = dilation_grid

    @torch.no_grad()
    def forward(self, image: Tensor, mask: Tensor) -> Tensor:
        """Refine mask (B, C, h, w) with image (B, K, H, W): bilinear resize to H x W, then PAMR (ssss.md §3)."""
        if image.dim() != 4 or mask.dim() != 4 or image.shape[0] != mask.shape[0]:
            raise ValueError(f"PAMR expects image (B, K, H, W) and mask (B, C, h, w), got {image.shape}, {mask.shape}")
        dtype = torch.promote_types(mask.dtype, torch.float32)
        image, refined = image.to(torch.promote_types(image.dtype, torch.float32)), mask.to(dtype)
        if refined.shape[-2:] != image.shape[-2:]:
            refined = F.interpolate(refined, size=image.shape[-2:], mode="bilinear", align_corners=True)
        no_autocast = (
            torch.autocast(image.device.type, enabled=False)  # float32 even inside a bf16/fp16 training step
            if torch.amp.is_autocast_available(image.device.type) else contextlib.nullcontext()
        )
        dilations = self.dilations
        if self.dilation_grid is not None:
            dilations = scale_dilations(dilations, self.dilation_grid, min(image.shape[-2:]))
        with no_autocast:
            weights = pamr_weights(image, dilations).to(dtype)
            return pamr_propagate(weights, refined, dilations, self.num_iter).to(mask.dtype)

    def extra_repr(self) -> str:
        return f"num_iter={self.num_iter}, dilations={self.dilations}, dilation_grid={self.dilation_grid}"
