"""CAM baseline (SSSS "bsl"; Zhou et al., CAM): backbone → Dropout2d → GAP → 1×1 classifier (ssss.md §2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from darkseg.models.backbones.base import Backbone
from darkseg.models.ops.init import kaiming_init
from darkseg.models.segmenters.base import IMAGENET_MEAN, IMAGENET_STD, Segmenter

#: floor of the CAM max-normalisation and of the log in ``logits``
CAM_EPS = 1e-5


class CAM(Segmenter):
    """Classification network whose class activation maps are the masks (ssss.md §2, "Baseline bsl").

    ``cls`` = 1×1 classifier (no bias) on the globally average-pooled, Dropout2d'ed deepest tap. ``masks`` (B, C,
    h, w) at the backbone's output stride: channel 0 = the constant ``bg_score``, channels 1.. = ReLU(CAM) divided
    by its per-image spatial max (+1e-5), computed from the features without dropout. ``logits`` =
    log(max(masks, 1e-5)), so argmax(logits) = argmax(masks). ``raw_cam`` (B, C, h, w): the CAM before ReLU and
    normalisation (the classifier applied to the undropped features), channel 0 = 0 (the classifier has no background
    output); a trainable score map with a constant background logit (PLDA's CPS, methods/plda.py). ``feats``:
    ``layer3`` (stride-4 tap), ``layer6``.
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
        bg_score: float = 0.1,
    ) -> None:
        super().__init__(backbone, num_classes, mean, std, normalize_input)
        self.mask_stride = backbone.strides[backbone.out_tap]
        self.bg_score = bg_score
        self.dropout = nn.Dropout2d(dropout)
        self.classifier = nn.Conv2d(backbone.channels[backbone.out_tap], num_classes - 1, 1, bias=False)
        kaiming_init(self.classifier)

    def forward(self, image: Tensor, depth: Tensor | None = None) -> dict[str, Tensor | dict[str, Tensor]]:
        taps = self.backbone_taps(image, depth)
        feats = taps[self.backbone.out_tap]
        cls = self.classifier(self.dropout(feats).mean(dim=(2, 3), keepdim=True)).flatten(1)
        raw = F.conv2d(feats, self.classifier.weight)
        cams = F.relu(raw)
        cams = cams / (cams.amax(dim=(2, 3), keepdim=True) + CAM_EPS)
        bg = cams.new_full((cams.shape[0], 1, *cams.shape[2:]), self.bg_score)
        masks = torch.cat([bg, cams], dim=1)
        logits = masks.clamp_min(CAM_EPS).log()
        return {
            "cls": cls,
            "logits": logits,
            "masks": masks,
            "raw_cam": torch.cat([torch.zeros_like(raw[:, :1]), raw], dim=1),
            "feats": {"layer3": taps[self.backbone.skip_tap], "layer6": feats},
        }
