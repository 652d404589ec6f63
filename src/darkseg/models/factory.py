"""Model config sections (pydantic) and builders; defaults are the SSSS reference values (ssss.md §1-§2, §9)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, PositiveInt

from darkseg.errors import ConfigError
from darkseg.models.backbones import Backbone, ResNet, WideResNet38
from darkseg.models.ops.dgf2 import DGF2Config, build_dgf2
from darkseg.models.segmenters import CAM, SSSS, Segmenter
from darkseg.models.weights import load_pretrained_backbone
from darkseg.schema import StrictModel

Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]


class WideResNet38Config(StrictModel):
    """WideResNet-38 (model A1, output stride 8), ssss.md §1; ``width``/``blocks`` shrink it for CPU runs."""

    name: Literal["wideresnet38"] = "wideresnet38"
    width: float = Field(1.0, gt=0.0, le=4.0)
    blocks: tuple[PositiveInt, PositiveInt, PositiveInt, PositiveInt, PositiveInt, PositiveInt] = (3, 3, 6, 3, 1, 1)
    freeze_bn: bool = True
    frozen_stages: tuple[Literal["conv1a", "b2", "b3", "b4", "b5", "b6", "b7", "bn7"], ...] = ("conv1a", "b2")
    pretrained: Path | None = None
    pretrained_partial: bool = False


class ResNetConfig(StrictModel):
    """ResNet-18/34/50/101 with dilation for output stride 8/16/32; torchvision-format weights."""

    name: Literal["resnet"] = "resnet"
    depth: Literal[18, 34, 50, 101] = 50
    output_stride: Literal[8, 16, 32] = 8
    width: float = Field(1.0, gt=0.0, le=4.0)
    blocks: tuple[PositiveInt, PositiveInt, PositiveInt, PositiveInt] | None = None
    freeze_bn: bool = True
    frozen_stages: tuple[Literal["stem", "layer1", "layer2", "layer3", "layer4"], ...] = ()
    pretrained: Path | None = None
    pretrained_partial: bool = False


BackboneConfig = Annotated[WideResNet38Config | ResNetConfig, Field(discriminator="name")]


class SSSSConfig(StrictModel):
    """SSSS segmenter (ssss.md §2); DGKD-WLSS uses ``focal_lambda: 0.3``, ``freeze_bn: false``, no frozen stages
    and, for the student, ``dgf2`` (depth prior + fusions after the configured backbone stages)."""

    name: Literal["ssss"] = "ssss"
    backbone: BackboneConfig = Field(default_factory=WideResNet38Config)
    normalize_input: bool = True
    aspp_channels: PositiveInt = 256
    aspp_rates: tuple[PositiveInt, ...] = Field((12, 24, 36), min_length=1)
    aspp_dropout: Fraction = 0.5
    freeze_aspp_bn_stats: bool = True
    skip_channels: PositiveInt = 48
    decoder_channels: PositiveInt = 256
    last_dropout: tuple[Fraction, Fraction] = (0.5, 0.1)
    sg_psi: Fraction = 0.3
    bg_logit: float = 1.0
    ngwp_eps: float = Field(1.0, gt=0.0)
    focal_p: float = Field(3.0, ge=0.0)
    focal_lambda: float = Field(0.01, gt=0.0)
    skip_fused: bool = False
    dgf2: DGF2Config | None = None


class CAMConfig(StrictModel):
    """CAM baseline (SSSS "bsl", ssss.md §2): Dropout2d → GAP → 1×1 classifier; constant background score."""

    name: Literal["cam"] = "cam"
    backbone: BackboneConfig = Field(default_factory=WideResNet38Config)
    normalize_input: bool = True
    dropout: Fraction = 0.5
    bg_score: float = Field(0.1, gt=0.0)


ModelConfig = Annotated[SSSSConfig | CAMConfig, Field(discriminator="name")]


def build_backbone(cfg: WideResNet38Config | ResNetConfig) -> Backbone:
    """Backbone from its config section (pretrained weights are loaded by :func:`build_segmenter`)."""
    if isinstance(cfg, WideResNet38Config):
        return WideResNet38(cfg.width, cfg.blocks, cfg.freeze_bn, cfg.frozen_stages)
    return ResNet(cfg.depth, cfg.output_stride, cfg.width, cfg.blocks, cfg.freeze_bn, cfg.frozen_stages)


def build_segmenter(
    cfg: SSSSConfig | CAMConfig,
    num_classes: int,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
    *,
    load_pretrained: bool = True,
) -> Segmenter:
    """Segmenter for ``cfg`` with ``num_classes`` (incl. background), with DGF2 attached if ``cfg.dgf2`` is set.

    ``load_pretrained``: load ``backbone.pretrained`` if set (off when the weights come from a checkpoint anyway).
    """
    if num_classes < 2:
        raise ConfigError(f"num_classes: {num_classes} classes (incl. background) is too few; need at least 2")
    backbone = build_backbone(cfg.backbone)
    if isinstance(cfg, SSSSConfig):
        prior_net, fusions = None, None
        if cfg.dgf2 is not None:
            prior_net, fusions = build_dgf2(cfg.dgf2, {s: backbone.channels[s] for s in backbone.stage_names})
        head = cfg.model_dump(exclude={"name", "backbone", "dgf2"})
        model: Segmenter = SSSS(backbone, num_classes, mean, std, **head, prior_net=prior_net, fusions=fusions)
    else:
        model = CAM(
            backbone, num_classes, mean, std, normalize_input=cfg.normalize_input, dropout=cfg.dropout,
            bg_score=cfg.bg_score,
        )
    if load_pretrained and cfg.backbone.pretrained is not None:
        load_pretrained_backbone(model.backbone, cfg.backbone.pretrained, cfg.backbone.pretrained_partial)
    return model
