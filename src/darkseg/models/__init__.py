"""Models: backbones, segmenters, ops, config sections and builders (architecture.md, Model contract)."""

from darkseg.models.factory import (
    BackboneConfig,
    CAMConfig,
    ModelConfig,
    ResNetConfig,
    SSSSConfig,
    WideResNet38Config,
    build_backbone,
    build_segmenter,
)
from darkseg.models.weights import LoadReport, load_into, load_pretrained_backbone, read_mxnet_params, read_weights

__all__ = [
    "BackboneConfig",
    "CAMConfig",
    "LoadReport",
    "ModelConfig",
    "ResNetConfig",
    "SSSSConfig",
    "WideResNet38Config",
    "build_backbone",
    "build_segmenter",
    "load_into",
    "load_pretrained_backbone",
    "read_mxnet_params",
    "read_weights",
]
