"""Gated dense Potts energy over all pixel pairs with a bilateral Gaussian kernel: ASDT's structure loss L_str
(Eq. 6-8), the fully connected dense-energy loss of RRM / Tang et al. (wsss-methods.md §1.3).

Exact: every pair (i, j ≠ i) counts. The N×N kernel is never stored: it is built in row chunks and multiplied at
once by everything the backward needs, so memory is O(chunk·N) and a 321-pixel crop at half resolution (~26k
pixels) fits.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from pydantic import Field

from darkseg.schema import StrictModel


class StructureLossConfig(StrictModel):
    """L_str settings (RRM code: colour σ 15 in 0-255 units, spatial σ 100 px at full resolution, weight 1e-7,
    computed at half resolution). The paper's "σ_D = 15, σ_I = 100" names them the other way round; the code's
    convention is used (wsss-methods.md §1.3)."""

    weight: float = Field(1e-7, ge=0, description="0 turns L_str off (Table 5, row 2)")
    sigma_rgb: float = Field(15.0, gt=0)
    sigma_xy: float = Field(100.0, gt=0, description="in pixels of the input crop; scaled with `scale`")
    scale: float = Field(0.5, gt=0, le=1, description="resolution of the energy relative to the crop")
    chunk: int = Field(4096, ge=1, description="kernel rows built at once (memory chunk·N floats)")
    unlabelled_gate: bool = Field(False, description="RRM's code: gate 1 on pixels without a label (255) instead of "
                                  "1 − max p (then L_str waits for the labels)")


def _kernel_rows(feats: torch.Tensor, rows: slice) -> torch.Tensor:
    """G_ij = exp(−½‖f_i − f_j‖²) for the pixels i in ``rows`` and every j: Eq. (6) of ASDT with Z = 1."""
    sub = feats[rows]
    sq = (sub * sub).sum(1, keepdim=True) + (feats * feats).sum(1)[None] - 2.0 * sub @ feats.T
    return torch.exp(-0.5 * sq.clamp_min(0.0))


def _kernel_products(feats: torch.Tensor, mats: torch.Tensor, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(G·1, G·mats) for the full kernel of ``feats`` (N, d), built ``chunk`` rows at a time."""
    n = feats.shape[0]
    ones, prods = feats.new_empty(n), mats.new_empty(n, mats.shape[1])
    for start in range(0, n, chunk):
        rows = slice(start, min(start + chunk, n))
        g = _kernel_rows(feats, rows)
        ones[rows], prods[rows] = g.sum(1), g @ mats
    return ones, prods


class _PottsEnergy(torch.autograd.Function):
    """E = Σ_b Σ_i g_bi Σ_{j≠i} G_ij Σ_{c∈b} p_ci (1 − p_cj) for one image and several branches b sharing the
    kernel: ``probs`` (N, ΣC_b) holds the branches' channels side by side, ``gate`` (N, ΣC_b) repeats g_bi over
    b's channels (a constant), ``feats`` (N, d). One kernel pass serves every branch.

    Uses Σ_{c∈b} p_ci = 1: E = Σ_ic g_ic [p_ci (G1 − 1)_i − p_ci (Gp)_ci + p_ci²] (G_ii = 1 removes j = i).
    """

    @staticmethod
    def forward(ctx, probs: torch.Tensor, gate: torch.Tensor, feats: torch.Tensor, chunk: int):  # noqa: ANN001, ANN205
        gated = gate * probs
        c = probs.shape[1]
        ones, prods = _kernel_products(feats, torch.cat([probs, gated], 1), chunk)
        g_p, g_gp = prods[:, :c], prods[:, c:]
        energy = (gated * ((ones - 1.0)[:, None] - g_p + probs)).sum()
        ctx.save_for_backward(probs, gate, ones, g_p, g_gp)
        return energy

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # noqa: ANN001, ANN205
        probs, gate, ones, g_p, g_gp = ctx.saved_tensors
        d_probs = gate * ((ones - 1.0)[:, None] - g_p + 2.0 * probs) - g_gp
        return grad * d_probs, None, None, None


def bilateral_features(image: torch.Tensor, sigma_xy: float, sigma_rgb: float) -> torch.Tensor:
    """Per-pixel (x/σ_xy, y/σ_xy, RGB/σ_rgb) of one image (3, H, W) in 0-255 units, as an (H·W, 5) matrix."""
    h, w = image.shape[-2:]
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float32, device=image.device),
        torch.arange(w, dtype=torch.float32, device=image.device),
        indexing="ij",
    )
    pos = torch.stack([xs, ys]).flatten(1) / sigma_xy
    return torch.cat([pos, image.float().flatten(1) / sigma_rgb]).T.contiguous()


def structure_loss(
    logits: Sequence[torch.Tensor],
    image: torch.Tensor,
    cfg: StructureLossConfig,
    unlabelled: Sequence[torch.Tensor] | None = None,
) -> torch.Tensor:
    """Σ over branches of L_str = Σ_i Σ_{j≠i} (1 − max_c p_ci) E_ij, Eq. (6)-(8) of ASDT, mean over the batch.

    ``logits``: the (B, C, h, w) logits of one or more segmentation branches, ``image`` (B, 3, H, W) in [0, 1];
    both are resized to ``scale`` × the image size (σ_xy scaled alike). The gate 1 − max p is a constant, as in
    RRM's code; ``unlabelled`` (one (B, H, W) bool mask per branch, e.g. its label == 255) sets it to 1 there, as
    RRM's code does with B^ct (wsss-methods.md §1.3; masks resized by nearest neighbour). The branches share one
    pass over the kernel.
    """
    if cfg.weight == 0:
        return logits[0].new_zeros(())
    size = (max(1, round(image.shape[-2] * cfg.scale)), max(1, round(image.shape[-1] * cfg.scale)))
    with torch.autocast(image.device.type, enabled=False):  # the kernel needs float32 distances
        probs = [F.interpolate(x.float(), size=size, mode="bilinear", align_corners=False).softmax(1) for x in logits]
        gates = [(1.0 - p.detach().amax(1, keepdim=True)).clamp_min(0.0) for p in probs]
        if unlabelled is not None:
            masks = [F.interpolate(m[:, None].float(), size=size, mode="nearest") > 0.5 for m in unlabelled]
            gates = [g.masked_fill(m, 1.0) for g, m in zip(gates, masks)]
        gates = [g.expand_as(p) for g, p in zip(gates, probs)]
        probs, gates = torch.cat(probs, 1), torch.cat(gates, 1)
        small = F.interpolate(image.float() * 255.0, size=size, mode="bilinear", align_corners=False)
        total = probs.new_zeros(())
        for p, g, img in zip(probs, gates, small):
            feats = bilateral_features(img, cfg.sigma_xy * cfg.scale, cfg.sigma_rgb)
            total = total + _PottsEnergy.apply(p.flatten(1).T, g.flatten(1).T.contiguous(), feats, cfg.chunk)
    return cfg.weight * total / probs.shape[0]
