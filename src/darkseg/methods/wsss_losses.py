"""Image-label WSSS losses shared by SSSS-based methods: classification loss, PAMR pseudo labels, balanced CE."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt

from darkseg.metrics import IGNORE_INDEX
from darkseg.models.ops.argmax import class_argmax
from darkseg.schema import StrictModel


class PseudoLabelConfig(StrictModel):
    """PAMR refinement and thresholds of the self-supervised segmentation loss (ssss.md §2-3)."""

    pamr_iters: int = Field(10, ge=1)
    pamr_dilations: tuple[int, ...] = (1, 2, 4, 8, 12, 24)
    pamr_dilation_grid: PositiveInt | None = Field(
        None, description="mask-grid side the dilations are given for (81: the official 321 crop at stride 4); "
        "set: scaled to the actual mask grid (scenes 96 crop: 24 → 1, 2, 4, 7); None: used as they are",
    )
    fg_cut: float = Field(0.6, gt=0, le=1)
    bg_cut: float = Field(0.7, gt=0, le=1)
    floor: float = Field(0.2, ge=0, le=1)
    image_gate: bool = True


def classification_loss(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Multi-label soft-margin loss over the foreground class scores (SSSS, ssss.md §2)."""
    return F.multilabel_soft_margin_loss(scores.float(), labels.float())


def clean_masks(masks: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Zero the foreground channels of classes absent from the image labels; background is kept."""
    keep = torch.cat([torch.ones_like(labels[:, :1]), labels], dim=1).to(masks.dtype)
    return masks * keep[:, :, None, None]


def pseudo_labels(
    refined: torch.Tensor, fg_cut: float = 0.6, bg_cut: float = 0.7, floor: float = 0.2
) -> torch.Tensor:
    """Pseudo label map from cleaned, refined masks (B, C, H, W): per-class max-relative thresholds.

    ssss.md §2 step 4: T_0 = max(bg_cut·max m_0, floor), T_c = max(fg_cut·max m_c, floor); a pixel takes class c
    when m_c > T_c; pixels claimed by no class or by several are ignored (255).
    """
    peak = refined.flatten(2).amax(-1)  # (B, C)
    cut = torch.full_like(peak, fg_cut)
    cut[:, 0] = bg_cut
    thresh = torch.maximum(peak * cut, torch.full_like(peak, floor))
    above = refined > thresh[:, :, None, None]
    count = above.sum(1)
    label = class_argmax(above.to(torch.uint8))
    label[count != 1] = IGNORE_INDEX
    return label.long()


def balanced_ce(
    logits: torch.Tensor, target: torch.Tensor, labels: torch.Tensor, image_gate: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class-balanced cross-entropy with the image gate (ssss.md §2 step 5); returns (loss, gate).

    Per image, w_c = (N − N_c)/(1 + N) with N the assigned pixels and N_c those of class c; the loss is the mean
    of w·CE over all H·W pixels (ignored pixels count as 0). With the gate, an image contributes only when its
    pseudo label holds exactly (#image labels + 1) classes.
    """
    b, c = logits.shape[:2]
    valid = target != IGNORE_INDEX
    safe = torch.where(valid, target, torch.zeros_like(target))
    ce = F.cross_entropy(logits.float(), safe, reduction="none")  # (B, H, W)
    onehot = F.one_hot(safe, c).permute(0, 3, 1, 2) * valid[:, None]
    n_c = onehot.flatten(2).sum(-1).float()  # (B, C)
    n = n_c.sum(1, keepdim=True)
    weights = (n - n_c) / (1.0 + n)  # (B, C)
    w_pix = torch.gather(weights, 1, safe.flatten(1)).view_as(ce) * valid
    per_image = (w_pix * ce).flatten(1).mean(1)
    if image_gate:
        gate = ((n_c > 0).sum(1) == labels.sum(1).round().long() + 1).float()
    else:
        gate = torch.ones(b, device=logits.device)
    return (per_image * gate).mean(), gate
