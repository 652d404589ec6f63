"""Backbones: ``forward(x, prior=None) -> dict`` of named taps with ``channels`` / ``strides`` (architecture.md)."""

from darkseg.models.backbones.base import Backbone
from darkseg.models.backbones.resnet import ResNet
from darkseg.models.backbones.wideresnet38 import WideResNet38, convert_mxnet_a1

__all__ = ["Backbone", "ResNet", "WideResNet38", "convert_mxnet_a1"]
