"""SSSS (Araslanov & Roth, CVPR 2020): single-stage WSSS from image labels, as teacher (normal light) or student.

L = L_cls + [it ≥ mask_loss_start]·λ_seg·L_seg, L_seg = balanced CE on PAMR-refined pseudo labels (ssss.md §2).
With a ``plda`` section, PLDA's losses are added (methods/plda.py): the domains are assigned on SSSS's masks.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from darkseg.methods.base import METHODS, DatasetInfo, Method, StepOutput
from darkseg.methods.plda import PLDA, PLDAConfig, attach, classifier_of
from darkseg.methods.wsss_losses import (
    PseudoLabelConfig,
    balanced_ce,
    classification_loss,
    clean_masks,
    pseudo_labels,
)
from darkseg.models.factory import build_segmenter
from darkseg.models.ops.pamr import PAMR
from darkseg.schema import StrictModel


class SSSSMethodConfig(StrictModel):
    """SSSS training: which view it learns from, and when/how much the mask loss counts."""

    name: Literal["ssss"] = "ssss"
    input: Literal["image", "dark"] = Field("image", description="image = normal-light teacher, dark = student")
    mask_loss_weight: float = Field(1.0, ge=0)
    mask_loss_start: int = Field(0, ge=0, description="iteration from which L_seg counts (SSSS: 5 epochs)")
    mask_loss_start_fraction: float | None = Field(
        None, ge=0, lt=1, description="L_seg from this fraction of train.iterations (replaces mask_loss_start; "
        "DGKD-WLSS: 8k of 40k = 0.2)",
    )
    pseudo: PseudoLabelConfig = PseudoLabelConfig()
    plda: PLDAConfig | None = Field(None, description="PLDA plug-in (pixel-level domain adaptation + CPS)")


class SSSSLosses:
    """L_cls and L_seg of an SSSS network's outputs; shared with the methods that extend SSSS.

    ``iterations`` (the run's length) is needed when ``mask_loss_start_fraction`` is set.
    """

    def __init__(self, cfg: SSSSMethodConfig, iterations: int | None = None) -> None:
        self.cfg = cfg
        self.mask_loss_start = cfg.mask_loss_start
        if cfg.mask_loss_start_fraction is not None:
            if iterations is None:
                raise ValueError("mask_loss_start_fraction needs the run's iterations")
            self.mask_loss_start = round(cfg.mask_loss_start_fraction * iterations)
        self.pamr = PAMR(cfg.pseudo.pamr_iters, cfg.pseudo.pamr_dilations, cfg.pseudo.pamr_dilation_grid)


    @torch.no_grad()
    def pseudo_target(self, image: torch.Tensor, masks: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """PAMR on the detached masks at mask resolution, upsampled to the crop, cleaned, thresholded."""
        p = self.cfg.pseudo
        small = F.interpolate(image.float(), size=masks.shape[-2:], mode="bilinear", align_corners=True)
        refined = self.pamr(small, masks.detach().float())
        refined = F.interpolate(refined, size=image.shape[-2:], mode="bilinear", align_corners=True)
        return pseudo_labels(clean_masks(refined, labels), p.fg_cut, p.bg_cut, p.floor)

    def __call__(self, out: dict, image: torch.Tensor, labels: torch.Tensor, iteration: int) -> StepOutput:
        loss_cls = classification_loss(out["cls"], labels)
        target = self.pseudo_target(image, out["masks"], labels)
        logits = F.interpolate(out["logits"].float(), size=image.shape[-2:], mode="bilinear", align_corners=True)
        loss_seg, gate = balanced_ce(logits, target, labels, self.cfg.pseudo.image_gate)
        weight = self.cfg.mask_loss_weight if iteration >= self.mask_loss_start else 0.0
        return StepOutput(
            losses={"cls": loss_cls, "seg": weight * loss_seg},
            metrics={"seg_unweighted": loss_seg.detach(), "gate": gate.mean()},
        )


@METHODS.register("ssss")
class SSSSMethod(Method):
    """One SSSS network trained on ``input`` (normal or dark images) from image-level labels; with ``plda`` set,
    SSSS + PLDA (one extra no-grad pass)."""

    name = "ssss"
    Config = SSSSMethodConfig
    deploy_net = "model"

    def __init__(self, cfg, info: DatasetInfo, load_external: bool = True) -> None:  # noqa: ANN001
        super().__init__(cfg, info)
        self.mcfg: SSSSMethodConfig = cfg.method
        self.model = build_segmenter(cfg.model, info.num_classes, info.mean, info.std, load_pretrained=load_external)
        self.nets["model"] = self.model
        self.losses = SSSSLosses(self.mcfg, cfg.train.iterations)
        self.plda: PLDA | None = attach(self.mcfg.plda, self.model, info, cfg.train.iterations, cfg.seed, self.nets,
                                          load_external=load_external)

    def train_views(self) -> tuple[str, ...]:
        views = (self.mcfg.input, "labels")
        return views + ("depth",) if getattr(self.model, "uses_depth", False) else views

    def input_view(self) -> str:
        return self.mcfg.input

    def training_step(self, phase: str, batch: dict, iteration: int, ctx: dict) -> StepOutput:
        image, depth, labels = batch[self.mcfg.input], batch.get("depth"), batch["labels"]
        model = self.nets["model"]
        out = model(image, depth)
        step = self.losses(out, image, labels, iteration)
        if self.plda is not None:
            extra = self.plda(model, classifier_of(self.nets), image, out, labels, iteration, depth=depth)
            step = StepOutput(losses={**step.losses, **extra.losses}, metrics={**step.metrics, **extra.metrics})
        return step
