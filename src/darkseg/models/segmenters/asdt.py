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
    """3×3 conv (dilation d) → ReLU → 3×3 conv (dilation d) to C logits, with biases (wsss-methods.md §1.1).

    Xavier weights drawn from ``generator`` only (zero biases): building a branch leaves the global RNG untouched,
    so models with and without it initialise their other parts alike (paired runs).
    """

    def __init__(self, cin: int, mid: int, num_classes: int, dilation: int, generator: torch.Generator) -> None:
        with torch.random.fork_rng(devices=()):  # the default init's draws are overwritten below
            super().__init__(
                nn.Conv2d(cin, mid, 3, padding=dilation, dilation=dilation),
                nn.ReLU(inplace=True),
                nn.Conv2d(mid, num_classes, 3, padding=dilation, dilation=dilation),
            )
        for m in self:
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight, generator=generator)
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
    and ``s_logits`` (B, C, h, w; each absent when its branch is not built), ``masks`` = the fused probabilities P̄
    (Eq. 1) with both branches, else the softmax of the one built (student only: Table 4 row 1; seg-teacher only:
    RRM), ``logits`` = log(masks) and ``feats``. ``cam_only=True`` skips the segmentation branches (the extra scales
    of the multi-scale CAM). Each segmentation branch is initialised from its own seed drawn at a fixed point of the
    global RNG, so the backbone, classifier and every built branch start alike whichever branches a model has.
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
        student: bool = True,
        fusion: Fusion = "max",
    ) -> None:
        super().__init__(backbone, num_classes, mean, std, normalize_input)
        if not (seg_teacher or student):
            raise ValueError("ASDT needs a seg-teacher or a student branch")
        cin = backbone.channels[backbone.out_tap]
        self.mask_stride = backbone.strides[backbone.out_tap]
        self.fusion = fusion
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(cin, num_classes - 1, 1, bias=False)
        nn.init.xavier_uniform_(self.classifier.weight)
        seeds = torch.randint(0, 2**62, (2,)).tolist()  # seg-teacher, student: drawn whether built or not

        def branch(seed: int) -> SegBranch:
            return SegBranch(cin, seg_channels, num_classes, seg_dilation, torch.Generator().manual_seed(seed))

        self.seg_teacher = branch(seeds[0]) if seg_teacher else None
        self.student = branch(seeds[1]) if student else None

    @property
    def has_seg_teacher(self) -> bool:
        return self.seg_teacher is not None

    @property
    def has_student(self) -> bool:
        return self.student is not None

    def forward(
        self, image: Tensor, depth: Tensor | None = None, *, cam_only: bool = False
    ) -> dict[str, Tensor | dict[str, Tensor]]:
        taps = self.backbone_taps(image, depth)
        feats = taps[self.backbone.out_tap]
        cls = self.classifier(self.dropout(feats).mean(dim=(2, 3), keepdim=True)).flatten(1)
        cams = F.relu(F.conv2d(feats, self.classifier.weight))
        if cam_only:
            return {"cls": cls, "cams": cams}
        out: dict = {"cls": cls, "cams": cams}
        if self.seg_teacher is not None:
            out["st_logits"] = self.seg_teacher(feats)
        if self.student is not None:
            out["s_logits"] = self.student(feats)
        probs = [out[k].float().softmax(1) for k in ("st_logits", "s_logits") if k in out]
        out["masks"] = fuse_predictions(*probs, self.fusion) if len(probs) == 2 else probs[0]
        out["logits"] = out["masks"].clamp_min(1e-12).log()
        out["feats"] = {"layer3": taps[self.backbone.skip_tap], "layer6": feats}
        return out
