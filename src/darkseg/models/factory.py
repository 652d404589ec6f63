"""Model config sections (pydantic) and builders; defaults are the SSSS reference values (ssss.md §1-§2, §9)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal

import torch
from pydantic import Field, PositiveInt, model_validator

from darkseg.errors import ConfigError
from darkseg.models.backbones import Backbone, ResNet, WideResNet38
from darkseg.models.backbones.resnet import ResNetVariant
from darkseg.models.ops.dgf2 import DGF2Config, build_dgf2
from darkseg.models.relight import RelightConfig, RelightNet, RelitSegmenter
from darkseg.models.segmenters import CAM, SSSS, DeepLabV1, DeepLabV2, PSPNet, RefineNet, Segmenter
from darkseg.models.segmenters.asdt import ASDT
from darkseg.models.segmenters.seam import SEAM
from darkseg.models.weights import load_pretrained_backbone
from darkseg.rng import own_rng
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
    """ResNet-18/34/50/101 with dilation for output stride 8/16/32; ``variant`` torchvision (torchvision weights),
    caffe (DeepLab/AdaptSegNet, the converted Caffe DeepLab file) or deepstem (PSPNet), night-uda.md §3."""

    name: Literal["resnet"] = "resnet"
    depth: Literal[18, 34, 50, 101] = 50
    variant: ResNetVariant = "torchvision"
    output_stride: Literal[8, 16, 32] = 8
    width: float = Field(1.0, gt=0.0, le=4.0)
    blocks: tuple[PositiveInt, PositiveInt, PositiveInt, PositiveInt] | None = None
    freeze_bn: bool = True
    freeze_block_bn_affine: bool = Field(False, description="DeeplabMulti: BN affine frozen in layer1..layer4")
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


class ASDTConfig(StrictModel):
    """ASDT self-dual teaching network (asdt.txt §3.1): class-teacher, seg-teacher and student on one backbone;
    ``fusion`` combines the seg-teacher's and student's probabilities (Eq. 1, Table 5)."""

    name: Literal["asdt"] = "asdt"
    backbone: BackboneConfig = Field(default_factory=WideResNet38Config)
    normalize_input: bool = True
    dropout: Fraction = 0.5
    seg_channels: PositiveInt = 512
    seg_dilation: PositiveInt = Field(12, description="dilation of both 3×3 convs of each seg branch (RRM: 12)")
    seg_teacher: bool = Field(True, description="false: class-teacher + student only (Table 4, row 1)")
    student: bool = Field(True, description="false: class-teacher + seg-teacher only (RRM: seg-teacher deployed)")
    fusion: Literal["max", "mean", "multiply"] = "max"

    @model_validator(mode="after")
    def _a_segmentation_branch(self) -> ASDTConfig:
        if not (self.seg_teacher or self.student):
            raise ValueError("seg_teacher and student are both false: keep at least one segmentation branch")
        return self


class SEAMConfig(StrictModel):
    """SEAM network (wsss-methods.md §3.2): ResNet-38 (BN, conv1a and b2 frozen), Dropout2d → 1×1 CAM head over all
    classes, PCM on the image and 1×1 projections of b4/b5; ``bg_score`` = background of ``masks`` (SEAM's 0.26)."""

    name: Literal["seam"] = "seam"
    backbone: WideResNet38Config = Field(default_factory=WideResNet38Config)
    normalize_input: bool = True
    dropout: Fraction = 0.5
    pcm_channels: tuple[PositiveInt, PositiveInt] = (64, 128)
    pcm_dim: PositiveInt = 192
    bg_score: float = Field(0.26, gt=0.0)


def _resnet101(variant: ResNetVariant, output_stride: int, **kw: bool) -> Callable[[], ResNetConfig]:
    return lambda: ResNetConfig(depth=101, variant=variant, output_stride=output_stride, freeze_bn=False, **kw)


class DeepLabV1Config(StrictModel):
    """DeepLab-v1 LargeFOV on WideResNet-38 (PSA/SEAM/PLDA retraining network)."""

    name: Literal["deeplabv1"] = "deeplabv1"
    backbone: BackboneConfig = Field(default_factory=lambda: WideResNet38Config(frozen_stages=()))
    normalize_input: bool = True
    fc_channels: PositiveInt = 1024
    rate: PositiveInt = 12
    dropout: Fraction = 0.5


class DeepLabV2Config(StrictModel):
    """DeepLab-v2: Caffe ResNet-101, ASPP-sum rates 6/12/18/24; ``aux_head`` = DeeplabMulti's layer3 classifier."""

    name: Literal["deeplabv2"] = "deeplabv2"
    backbone: BackboneConfig = Field(default_factory=_resnet101("caffe", 8, freeze_block_bn_affine=True))
    normalize_input: bool = True
    rates: tuple[PositiveInt, ...] = Field((6, 12, 18, 24), min_length=1)
    aux_head: bool = False


class PSPNetConfig(StrictModel):
    """PSPNet: deep-stem ResNet-101 at output stride 8, pyramid pooling, DSN auxiliary head."""

    name: Literal["pspnet"] = "pspnet"
    backbone: BackboneConfig = Field(default_factory=_resnet101("deepstem", 8))
    normalize_input: bool = True
    channels: PositiveInt = 512
    bins: tuple[PositiveInt, ...] = Field((1, 2, 3, 6), min_length=1)
    dropout: Fraction = 0.1
    aux_head: bool = True


class RefineNetConfig(StrictModel):
    """RefineNet (4-cascade, RCU + CRP) on a plain ResNet-101 (output stride 32), predictions at stride 4."""

    name: Literal["refinenet"] = "refinenet"
    backbone: BackboneConfig = Field(default_factory=_resnet101("torchvision", 32))
    normalize_input: bool = True
    top_channels: PositiveInt = 512
    channels: PositiveInt = 256
    dropout: Fraction = 0.5


#: fully supervised segmenters: config section -> network class (built the same way)
DenseConfig = DeepLabV1Config | DeepLabV2Config | PSPNetConfig | RefineNetConfig
_DENSE: dict[type, type[Segmenter]] = {
    DeepLabV1Config: DeepLabV1, DeepLabV2Config: DeepLabV2, PSPNetConfig: PSPNet, RefineNetConfig: RefineNet,
}



class RelitConfig(StrictModel):
    """A fully supervised segmenter behind the relighting network of DANNet/DANIA (``models/relight.py``)."""

    name: Literal["relit"] = "relit"
    relight: RelightConfig = RelightConfig()
    segmenter: Annotated[DenseConfig, Field(discriminator="name")]


ModelConfig = Annotated[SSSSConfig | CAMConfig | ASDTConfig | SEAMConfig | DenseConfig | RelitConfig,
                        Field(discriminator="name")]


def build_backbone(cfg: WideResNet38Config | ResNetConfig) -> Backbone:
    """Backbone from its config section (pretrained weights are loaded by :func:`build_segmenter`)."""
    if isinstance(cfg, WideResNet38Config):
        return WideResNet38(cfg.width, cfg.blocks, cfg.freeze_bn, cfg.frozen_stages)
    return ResNet(
        cfg.depth, cfg.output_stride, cfg.width, cfg.blocks, cfg.freeze_bn, cfg.frozen_stages,
        variant=cfg.variant, freeze_block_bn_affine=cfg.freeze_block_bn_affine,
    )


def build_segmenter(
    cfg: SSSSConfig | CAMConfig | ASDTConfig | SEAMConfig | DenseConfig | RelitConfig,
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
    if isinstance(cfg, RelitConfig):
        segmenter = build_segmenter(cfg.segmenter, num_classes, mean, std, load_pretrained=load_pretrained)
        # Own seed, global RNG untouched: the segmenter initialises as it does without relighting (paired seeds).
        with own_rng(torch.initial_seed() + 2):
            relight = RelightNet(cfg.relight.width, cfg.relight.blocks)
        return RelitSegmenter(relight, segmenter)  # type: ignore[return-value]
    backbone = build_backbone(cfg.backbone)
    if isinstance(cfg, SSSSConfig):
        prior_net, fusions = None, None
        if cfg.dgf2 is not None:
            # DGF2 initialises from its own seed and leaves the global RNG untouched, so that a student with and
            # without DGF2 shares the head's initialisation and every later dropout/gate draw (paired seeds).
            with own_rng(torch.initial_seed() + 1):
                prior_net, fusions = build_dgf2(cfg.dgf2, {s: backbone.channels[s] for s in backbone.stage_names})
        head = cfg.model_dump(exclude={"name", "backbone", "dgf2"})
        model: Segmenter = SSSS(backbone, num_classes, mean, std, **head, prior_net=prior_net, fusions=fusions)
    elif isinstance(cfg, DenseConfig):
        model = _DENSE[type(cfg)](backbone, num_classes, mean, std, **cfg.model_dump(exclude={"name", "backbone"}))
    elif isinstance(cfg, ASDTConfig):
        model = ASDT(backbone, num_classes, mean, std, **cfg.model_dump(exclude={"name", "backbone"}))
    elif isinstance(cfg, SEAMConfig):
        model = SEAM(backbone, num_classes, mean, std, **cfg.model_dump(exclude={"name", "backbone"}))
    else:
        model = CAM(
            backbone, num_classes, mean, std, normalize_input=cfg.normalize_input, dropout=cfg.dropout,
            bg_score=cfg.bg_score,
        )
    if load_pretrained and cfg.backbone.pretrained is not None:
        load_pretrained_backbone(model.backbone, cfg.backbone.pretrained, cfg.backbone.pretrained_partial)
    return model
