"""ASDT self-dual teaching network (Zhang et al., "Alternative self-dual teaching"): one shared backbone with a
class-teacher (GAP + FC → CAM), a seg-teacher and a student (two dilated 3×3 convs each), asdt.txt §3.1 and
wsss-methods.md §1.1 (RRM's segmentation branch)."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from darkseg.models.backbones.base import Backbone
from darkseg.models.segmenters.base import IMAGENET_MEAN, IMAGENET_STD, Segmenter

Fusion = Literal["max", "mean", "multiply"]


class SegBranch(nn.Sequential):
    """3×3 conv (dilation d) → ReLU → 3×3 conv (dilation d) to C logits, with biases (wsss-methods.md §1.1)."""

    def __init__(self, cin: int, mid: int, num_classes: int, dilation: int) -> None:
        super().__init__(
            nn.Conv2d(cin, mid, 3, padding=dilation, dilation=dilation),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, num_classes, 3, padding=dilation, dilation=dilation),
        )
        for m in self:
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)


def fuse_predictions(p_st: Tensor, p_s: Tensor, fusion: Fusion) -> Tensor:
    """P̄ = Δmax[P^st, P^s], Eq. (1) of ASDT (Table 5's mean / multiply as alternatives), renormalised per pixel."""
    if fusion == "max":
        fused = torch.maximum(p_st, p_s)
    elif fusion == "mean":
        fused = 0.5 * (p_st + p_s)
    else:
        fused = p_st * p_s
    return fused / fused.sum(1, keepdim=True).clamp_min(1e-12)


class ASDT(Segmenter):
    """Shared backbone + class-teacher, seg-teacher and student branches on the deepest tap.

    ``forward(image, depth=None)`` returns ``cls`` (B, C−1, class-teacher scores after Dropout2d + GAP + 1×1 conv
    without bias), ``cams`` (B, C−1, h, w: ReLU of the classifier applied to the undropped features), ``st_logits``
    and ``s_logits`` (B, C, h, w; ``st_logits`` is absent without a seg-teacher), ``masks`` = the fused
    probabilities P̄ (Eq. 1; the student's softmax without a seg-teacher), ``logits`` = log(masks) and ``feats``.
    ``cam_only=True`` skips the segmentation branches (the extra scales of the multi-scale CAM).
    """

    def __init__(
        self,
        backbone: Backbone,
        num_classes: int,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
        *,
        normalize_input: bool = True,
        dropout: float = 0.5,
        seg_channels: int = 512,
        seg_dilation: int = 12,
        seg_teacher: bool = True,
        fusion: Fusion = "max",
    ) -> None:
        super().__init__(backbone, num_classes, mean, std, normalize_input)
        cin = backbone.channels[backbone.out_tap]
        self.mask_stride = backbone.strides[backbone.out_tap]
        self.fusion = fusion
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(cin, num_classes - 1, 1, bias=False)
        nn.init.xavier_uniform_(self.classifier.weight)
        self.seg_teacher = SegBranch(cin, seg_channels, num_classes, seg_dilation) if seg_teacher else None
        self.student = SegBranch(cin, seg_channels, num_classes, seg_dilation)

    @property
    def has_seg_teacher(self) -> bool:
        return self.seg_teacher is not None

    def forward(
        self, image: Tensor, depth: Tensor | None = None, *, cam_only: bool = False
    ) -> dict[str, Tensor | dict[str, Tensor]]:
        taps = self.backbone_taps(image, depth)
        feats = taps[self.backbone.out_tap]
        cls = self.classifier(self.dropout(feats).mean(dim=(2, 3), keepdim=True)).flatten(1)
        cams = F.relu(F.conv2d(feats, self.classifier.weight))
        if cam_only:
            return {"cls": cls, "cams": cams}
        out: dict = {"cls": cls, "cams": cams, "s_logits": self.student(feats)}
        probs = out["s_logits"].float().softmax(1)
        if self.seg_teacher is not None:
            out["st_logits"] = self.seg_teacher(feats)
            probs = fuse_predictions(out["st_logits"].float().softmax(1), probs, self.fusion)
        out["masks"] = probs
        out["logits"] = probs.clamp_min(1e-12).log()
        out["feats"] = {"layer3": taps[self.backbone.skip_tap], "layer6": feats}
        return out
