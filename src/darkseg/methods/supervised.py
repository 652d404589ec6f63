"""Fully supervised training of a segmenter on masks (ground truth or pseudo masks): the ordinary recipe of the
segmentation networks (DeepLab, PSPNet, RefineNet) and the second stage of two-stage WSSS."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from darkseg.errors import ConfigError
from darkseg.methods.base import METHODS, DatasetInfo, Method, StepOutput
from darkseg.models.factory import build_segmenter
from darkseg.schema import StrictModel

IGNORE_INDEX = 255


class SupervisedConfig(StrictModel):
    """Cross-entropy on masks (255 = ignore); optional class weights and auxiliary-head weight."""

    name: Literal["supervised"] = "supervised"
    input: Literal["image", "dark"] = Field("image", description="which image view to learn from")
    class_weights: tuple[float, ...] | None = Field(
        None, description="one CE weight per class (background first); None = unweighted"
    )
    aux_weight: float = Field(0.4, ge=0, description="weight of the auxiliary head's CE (PSPNet 0.4)")


def segmentation_ce(logits: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Pixel-wise cross-entropy, logits bilinearly upsampled to the mask size, 255 ignored: the (class-weighted)
    mean over labelled pixels as ``F.cross_entropy`` computes it, and 0 when every pixel is ignored."""
    logits = F.interpolate(logits.float(), size=mask.shape[-2:], mode="bilinear", align_corners=False)
    total = F.cross_entropy(logits, mask, weight=weight, ignore_index=IGNORE_INDEX, reduction="sum")
    valid = (mask != IGNORE_INDEX).float()
    if weight is not None:
        valid = valid * weight[mask.clamp_max(logits.shape[1] - 1)]
    return total / valid.sum().clamp_min(torch.finfo(torch.float32).tiny)


@METHODS.register("supervised")
class SupervisedMethod(Method):
    """One segmenter trained with pixel-wise cross-entropy on the dataset's masks (e.g. a pseudo-mask folder)."""

    name = "supervised"
    Config = SupervisedConfig
    deploy_net = "model"

    def __init__(self, cfg, info: DatasetInfo, load_external: bool = True) -> None:  # noqa: ANN001
        super().__init__(cfg, info)
        self.mcfg: SupervisedConfig = cfg.method
        weights = self.mcfg.class_weights
        if weights is not None and len(weights) != info.num_classes:
            raise ConfigError(
                f"method.class_weights: {len(weights)} values for {info.num_classes} classes "
                f"({', '.join(info.class_names)}); give one per class, background first"
            )
        self.model = build_segmenter(cfg.model, info.num_classes, info.mean, info.std, load_pretrained=load_external)
        self.nets["model"] = self.model
        self.weight = torch.tensor(weights, dtype=torch.float32) if weights is not None else None

    def train_views(self) -> tuple[str, ...]:
        return (self.mcfg.input, "mask")

    def input_view(self) -> str:
        return self.mcfg.input

    def training_step(self, phase: str, batch: dict, iteration: int, ctx: dict) -> StepOutput:
        image, mask = batch[self.mcfg.input], batch["mask"]
        weight = self.weight.to(image.device) if self.weight is not None else None
        out = self.nets["model"](image)
        losses = {"ce": segmentation_ce(out["logits"], mask, weight)}
        if "aux_logits" in out and self.mcfg.aux_weight > 0:
            losses["aux"] = self.mcfg.aux_weight * segmentation_ce(out["aux_logits"], mask, weight)
        return StepOutput(losses=losses)
