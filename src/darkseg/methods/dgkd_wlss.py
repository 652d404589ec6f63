"""DGKD-WLSS: diffusion-guided distillation from a normal-light SSSS teacher to a dark-image SSSS student.

L = L_cls + L_seg + Σ_levels (L_diff + L_kd) (Eq. 14 of DGKD-WLSS). The teacher (frozen, eval mode, no gradients,
precision ``teacher.amp``: ``off`` = fp32 as the official code) sees the normal-light image of the same augmented
crop; the student sees the dark image (and the depth map when it has DGF2). Levels: ``mask`` (softmax masks,
label-cleaned on both sides unless ``clean_student_masks: false``), ``layer6`` (conv6) and ``layer3`` (b3 output).

Teacher targets. The official code distils Layer 3/6 through randomly initialised, frozen teacher-side heads (its
teacher checkpoints lack them), so two of its three targets are random projections; configs reproduce that with
``teacher_transform: random_frozen`` + ``student_adapter: conv3x3_bn_relu`` (``*_faithful.yaml``). darkseg's
default distils in the teacher's own feature space: Layer 3 as is (256 ch) and Layer 6 through a DiffKD-style
linear autoencoder trained to reconstruct the teacher feature, with a 1×1 student-side adapter. All projection
heads, adapters and diffusion modules live in the training-only ``distill`` network, never in the deployed student.

Paired seeds: with the same run seed, a DGKD student and the dark baseline share initialisation, data order,
augmentation and every dropout / stochastic-gate draw of the student. The teacher and the distillation modules are
built from their own seed, and the diffusion noise is drawn from a generator seeded by (run seed, iteration), so
neither touches the global RNG the student draws from; that generator needs no checkpoint (resume stays exact).
"""

from __future__ import annotations

import contextlib
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator

from darkseg.distill import DistillLevelConfig, MultiLevelDistiller
from darkseg.errors import ConfigError
from darkseg.methods.base import METHODS, DatasetInfo, Method, StepOutput
from darkseg.methods.ssss import PseudoLabelConfig, SSSSLosses, SSSSMethodConfig
from darkseg.methods.wsss_losses import clean_masks
from darkseg.models.factory import ModelConfig, build_segmenter
from darkseg.models.weights import load_into, read_weights
from darkseg.precision import effective_amp
from darkseg.rng import own_rng, stream_seed
from darkseg.schema import AmpMode, StrictModel

LEVELS = ("mask", "layer6", "layer3")


class TeacherConfig(StrictModel):
    """The frozen normal-light teacher: its weights, architecture and inference precision."""

    weights: str | None = Field(None, description="trained teacher weights, e.g. <teacher run>/model_final.safetensors")
    model: ModelConfig | None = Field(None, description="teacher architecture; default: the student's without depth")
    amp: AmpMode = Field("bf16", description="teacher forward precision: off = fp32 (official), bf16, fp16 (CUDA)")
    clean_masks: bool = Field(True, description="zero the teacher's masks of classes absent from the image labels")
    channels_last: bool = Field(False, description="run the teacher's forward channels-last (same computation; "
                                                   "a speed option, also on CPU: the teacher has no backward pass)")


class DGKDConfig(StrictModel):
    """DGKD-WLSS training: SSSS losses of the student + diffusion-guided distillation levels."""

    name: Literal["dgkd_wlss"] = "dgkd_wlss"
    input: Literal["dark"] = "dark"
    teacher: TeacherConfig = TeacherConfig()
    mask_loss_weight: float = Field(1.0, ge=0)
    mask_loss_start: int = Field(0, ge=0)
    mask_loss_start_fraction: float | None = Field(None, ge=0, lt=1, description="as in SSSS (replaces the start)")
    pseudo: PseudoLabelConfig = PseudoLabelConfig()
    clean_student_masks: bool = Field(
        True, description="zero the student's masks of absent classes before mask-level distillation (official)"
    )
    mask_resolution: Literal["input", "native"] = Field(
        "input", description="distil masks at the crop size (official) or at the mask stride (cheaper)"
    )
    levels: dict[Literal["mask", "layer6", "layer3"], DistillLevelConfig] = Field(
        default_factory=lambda: {name: DistillLevelConfig() for name in LEVELS}
    )
    seed: int = Field(1, description="seed of the frozen random teacher heads (faithful configs)")

    @field_validator("levels", mode="before")
    @classmethod
    def _drop_disabled(cls, value: object) -> object:
        """``level: null`` disables a level inherited from a base config (ablations)."""
        return {k: v for k, v in value.items() if v is not None} if isinstance(value, dict) else value


def _autocast(mode: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The teacher's precision: ``off`` runs fp32 even inside the trainer's bf16/fp16 autocast."""
    if device.type == "meta" or not torch.amp.is_autocast_available(device.type):
        return contextlib.nullcontext()
    mode = effective_amp(mode, device.type, "method.teacher.amp")
    if mode == "off":
        return torch.autocast(device.type, enabled=False)
    if mode == "fp16" and device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if mode == "bf16" else torch.float16)


@METHODS.register("dgkd_wlss")
class DGKDMethod(Method):
    """Student SSSS (± DGF2) on dark images distilled from a frozen SSSS teacher on the paired normal images."""

    name = "dgkd_wlss"
    Config = DGKDConfig
    deploy_net = "student"

    def __init__(self, cfg, info: DatasetInfo, load_external: bool = True) -> None:  # noqa: ANN001
        super().__init__(cfg, info)
        m: DGKDConfig = cfg.method
        self.mcfg = m
        self.student = build_segmenter(cfg.model, info.num_classes, info.mean, info.std, load_pretrained=load_external)
        self.run_seed = cfg.seed
        with own_rng(stream_seed(cfg.seed, 1)):  # built from their own seed: the student's RNG stream is untouched
            teacher_cfg = m.teacher.model or cfg.model.model_copy(update={"dgf2": None})
            self.teacher = build_segmenter(teacher_cfg, info.num_classes, info.mean, info.std, load_pretrained=False)
            channels_s = {"mask": info.num_classes, **self.student.feature_channels}
            channels_t = {"mask": info.num_classes, **self.teacher.feature_channels}
            self.distiller = MultiLevelDistiller.build(m.levels, channels_s, channels_t, seed=m.seed)
        if load_external:
            if not m.teacher.weights:
                raise ConfigError("method.teacher.weights: DGKD needs a trained teacher; train a *_teacher config "
                                  "and pass its model_final.safetensors")
            load_into(self.teacher, read_weights(m.teacher.weights, "method.teacher.weights"), m.teacher.weights)
        self.teacher.requires_grad_(False).eval()
        if m.teacher.channels_last:
            self.teacher.to(memory_format=torch.channels_last)
        self.nets["student"] = self.student
        self.nets["teacher"] = self.teacher
        self.nets["distill"] = self.distiller
        self.external_nets = {"teacher"}
        self.ssss = SSSSLosses(SSSSMethodConfig(
            mask_loss_weight=m.mask_loss_weight, mask_loss_start=m.mask_loss_start,
            mask_loss_start_fraction=m.mask_loss_start_fraction, pseudo=m.pseudo,
        ), cfg.train.iterations)

    def train_views(self) -> tuple[str, ...]:
        views = ("image", "dark", "labels")
        return views + ("depth",) if self.student.uses_depth else views

    def input_view(self) -> str:
        return "dark"

    def _teacher_targets(self, image: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """Teacher outputs on the normal-light image: frozen, eval mode, no gradients, autocast."""
        self.teacher.eval()
        if self.mcfg.teacher.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        with torch.no_grad(), _autocast(self.mcfg.teacher.amp, image.device):
            out = self.nets["teacher"](image)
        masks = out["masks"].float()
        if self.mcfg.teacher.clean_masks:
            masks = clean_masks(masks, labels)
        return {"mask": masks, **{k: v.float() for k, v in out["feats"].items()}}

    def _resize_masks(self, masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if self.mcfg.mask_resolution == "native" or masks.shape[-2:] == size:
            return masks
        return F.interpolate(masks, size=size, mode="bilinear", align_corners=True)

    def noise_generator(self, iteration: int, device: torch.device) -> torch.Generator:
        """The diffusion noise generator of one iteration, seeded by (run seed, iteration): resumable, unshared."""
        return torch.Generator(device).manual_seed(stream_seed(self.run_seed, 2, iteration))

    def training_step(self, phase: str, batch: dict, iteration: int, ctx: dict) -> StepOutput:
        dark, labels = batch["dark"], batch["labels"]
        out = self.nets["student"](dark, batch.get("depth"))
        step = self.ssss(out, dark, labels, iteration)
        teacher = self._teacher_targets(batch["image"], labels)
        size = dark.shape[-2:]
        masks = clean_masks(out["masks"], labels) if self.mcfg.clean_student_masks else out["masks"]
        student_feats = {"mask": self._resize_masks(masks, size), **out["feats"]}
        teacher_feats = {**teacher, "mask": self._resize_masks(teacher["mask"], size)}
        used = {k: student_feats[k] for k in self.mcfg.levels}
        targets = {k: teacher_feats[k] for k in self.mcfg.levels}
        kd = self.nets["distill"](used, targets, self.noise_generator(iteration, dark.device))
        return StepOutput(losses={**step.losses, **kd}, metrics=step.metrics)
