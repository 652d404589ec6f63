"""Segmenters: ``forward(image, depth=None) -> dict(cls, logits, masks, feats)`` (architecture.md, Model contract)."""

from darkseg.models.segmenters.base import IMAGENET_MEAN, IMAGENET_STD, Segmenter
from darkseg.models.segmenters.cam import CAM
from darkseg.models.segmenters.deeplabv1 import DeepLabV1
from darkseg.models.segmenters.deeplabv2 import DeepLabV2
from darkseg.models.segmenters.pspnet import PSPNet
from darkseg.models.segmenters.refinenet import RefineNet
from darkseg.models.segmenters.ssss import SSSS, convert_1stage_wseg, ngwp_focal_scores

__all__ = [
    "CAM", "IMAGENET_MEAN", "IMAGENET_STD", "SSSS", "DeepLabV1", "DeepLabV2", "PSPNet", "RefineNet", "Segmenter",
    "convert_1stage_wseg", "ngwp_focal_scores",
]
