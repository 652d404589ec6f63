"""ASDT (Zhang et al., "Alternative self-dual teaching"): single-stage WSSS from image labels on one network with a
class-teacher, a seg-teacher and a student; a PWM signal alternates which teacher the student learns from.

Per iteration: L = L_cls (Eq. 2, class-teacher) + L_d^ct(P^st) (Eq. 4, seg-teacher) + the student's loss chosen
by ``strategy`` (Table 4): class-teacher only (Eq. 4), seg-teacher only (Eq. 5), naive max/mean (Eq. 5 on the CRF of
max/mean(P^ct, P^st)) or alternative (Eq. 3: PWM between Eq. 4 and Eq. 5). Every L_d includes L_str (Eq. 6-8).
Strategy ``none`` with ``model.student: false`` is RRM itself: the seg-teacher alone learns from B^ct.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt, model_validator

from darkseg.errors import ConfigError
from darkseg.methods.asdt_knowledge import IGNORE, KnowledgeConfig, KnowledgeJob, KnowledgeWorkers
from darkseg.methods.base import METHODS, DatasetInfo, Method, StepOutput
from darkseg.methods.structure_loss import StructureLossConfig, structure_loss
from darkseg.methods.wsss_losses import classification_loss
from darkseg.models.factory import ASDTConfig, build_segmenter
from darkseg.models.ops.crf import require_dense_crf
from darkseg.schema import StrictModel

Strategy = Literal["none", "class_teacher", "seg_teacher", "naive_max", "naive_mean", "alternative"]


class PWMConfig(StrictModel):
    """PW wave of Eq. (3): period T, duty ratio τ = T_l / T_h (class-teacher / seg-teacher iterations), phase.

    T = 150, τ = 5: 125 class-teacher iterations, then 25 seg-teacher iterations (wsss-methods.md §2); ``phase``
    shifts the wave (phase = T_l starts with the seg-teacher).
    """

    period: PositiveInt = 150
    duty_ratio: float = Field(5.0, gt=0)
    phase: int = Field(0, ge=0)

    @property
    def high_iters(self) -> int:
        """T_h = T / (1 + τ), rounded."""
        return round(self.period / (1.0 + self.duty_ratio))

    @model_validator(mode="after")
    def _both_levels(self) -> PWMConfig:
        if not 1 <= self.high_iters < self.period:
            raise ValueError(f"period {self.period} with duty_ratio {self.duty_ratio} leaves a level empty")
        return self


def pwm_selects_seg_teacher(iteration: int, pwm: PWMConfig) -> bool:
    """Λ_t of Eq. (3) of ASDT: True on the high level (seg-teacher), the last T_h iterations of each period."""
    return (iteration + pwm.phase) % pwm.period >= pwm.period - pwm.high_iters


class ASDTMethodConfig(StrictModel):
    """ASDT training: distillation strategy (Table 4), PWM, knowledge (B^ct, R^ct, B^st), L_str, CE balance."""

    name: Literal["asdt"] = "asdt"
    input: Literal["image", "dark"] = Field("image", description="which image view to learn from")
    strategy: Strategy = Field("alternative", description="the student's teacher (Table 4); none = no student (RRM)")
    pwm: PWMConfig = PWMConfig()
    cam_scales: tuple[float, ...] = Field((1.0, 0.5, 1.5, 2.0), description="multi-scale CAM; 1.0 is the main pass")
    knowledge: KnowledgeConfig = KnowledgeConfig()
    structure: StructureLossConfig = StructureLossConfig()
    balanced_ce: bool = Field(True, description="RRM: mean CE over background pixels + mean CE over foreground")
    distill_start: int = Field(0, ge=0, description="iterations of classification only before distillation")
    distill_weight: float = Field(1.0, gt=0, description="weight of the segmentation branches' losses (L_d, L_str) "
                                  "against L_cls (paper: 1)")

    @model_validator(mode="after")
    def _main_scale(self) -> ASDTMethodConfig:
        if 1.0 not in self.cam_scales or any(s <= 0 for s in self.cam_scales):
            raise ValueError("cam_scales must be positive and include 1.0 (the pass with gradients)")
        return self


def _masked_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean CE over the pixels whose target is not 255 (0 when there are none)."""
    ce = F.cross_entropy(logits.float(), target, ignore_index=IGNORE, reduction="none")
    return ce.sum() / (target != IGNORE).sum().clamp_min(1)


def distillation_ce(logits: torch.Tensor, target: torch.Tensor, balanced: bool) -> torch.Tensor:
    """Hard-label term of Eq. (4)/(5) of ASDT: −Σ_i r_i Σ_c b_ci log p_ci per labelled pixel (255 = r_i = 0).

    ``balanced`` (RRM's code): mean CE over the background pixels plus mean CE over the foreground pixels.
    """
    if not balanced:
        return _masked_ce(logits, target)
    background = torch.where(target == 0, target, torch.full_like(target, IGNORE))
    foreground = torch.where(target == 0, torch.full_like(target, IGNORE), target)
    return _masked_ce(logits, background) + _masked_ce(logits, foreground)


def _labels(maps: list, size: torch.Size, device: torch.device) -> torch.Tensor:
    """(B, H, W) int64 labels from per-image uint8 maps, upsampled to ``size`` by nearest neighbour if smaller."""
    labels = torch.stack([torch.from_numpy(m) for m in maps])
    if labels.shape[-2:] != size:
        labels = F.interpolate(labels[:, None].float(), size=size, mode="nearest")[:, 0]
    return labels.to(device).long()


def _to_uint8_hwc(images: torch.Tensor) -> list:
    return list((images.detach().float().clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy())


@METHODS.register("asdt")
class ASDTMethod(Method):
    """Class-teacher, seg-teacher and student of one :class:`~darkseg.models.segmenters.asdt.ASDT` network."""

    name = "asdt"
    Config = ASDTMethodConfig
    deploy_net = "model"

    def __init__(self, cfg, info: DatasetInfo, load_external: bool = True) -> None:  # noqa: ANN001
        super().__init__(cfg, info)
        self.mcfg: ASDTMethodConfig = cfg.method
        if not isinstance(cfg.model, ASDTConfig):
            raise ConfigError(f"model.name: method 'asdt' needs model.name 'asdt', got '{cfg.model.name}'")
        if self.mcfg.strategy not in ("none", "class_teacher") and not cfg.model.seg_teacher:
            raise ConfigError(f"method.strategy: '{self.mcfg.strategy}' needs a seg-teacher; set model.seg_teacher: "
                              "true or use strategy class_teacher")
        if (self.mcfg.strategy == "none") == cfg.model.student:
            raise ConfigError(f"method.strategy: '{self.mcfg.strategy}' with model.student: {cfg.model.student}; "
                              "strategy none is the model without a student (RRM), set both or neither")
        require_dense_crf()  # the class-teacher's reliable labels (RRM) need it from the first iteration
        self.model = build_segmenter(cfg.model, info.num_classes, info.mean, info.std, load_pretrained=load_external)
        self.nets["model"] = self.model
        self.workers = KnowledgeWorkers(self.mcfg.knowledge)

    def train_views(self) -> tuple[str, ...]:
        return (self.mcfg.input, "labels")

    def input_view(self) -> str:
        return self.mcfg.input

    def student_target(self, iteration: int) -> Literal["st", "max", "mean"] | None:
        """What the student learns from at ``iteration``: None = B^ct (Eq. 4), else B^st or a naive fusion."""
        strategy = self.mcfg.strategy
        if strategy == "alternative":
            return "st" if pwm_selects_seg_teacher(iteration, self.mcfg.pwm) else None
        return {"none": None, "class_teacher": None, "seg_teacher": "st", "naive_max": "max",
                "naive_mean": "mean"}[strategy]

    @torch.no_grad()
    def multiscale_cams(self, image: torch.Tensor, cams: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Mean over ``cam_scales`` of the CAMs at the 1.0-scale feature size, upsampled to ``size`` (RRM §1.1)."""
        total = cams.detach().float().clone()
        for s in self.mcfg.cam_scales:
            if s == 1.0:
                continue
            scaled_size = [max(self.model.min_input_size, round(d * s)) for d in image.shape[-2:]]
            scaled = F.interpolate(image, size=scaled_size, mode="bilinear", align_corners=False)
            other = self.nets["model"](scaled, cam_only=True)["cams"].float()
            total += F.interpolate(other, size=cams.shape[-2:], mode="bilinear", align_corners=False)
        total /= len(self.mcfg.cam_scales)
        return F.interpolate(total, size=size, mode="bilinear", align_corners=False)

    def training_step(self, phase: str, batch: dict, iteration: int, ctx: dict) -> StepOutput:
        image, labels = batch[self.mcfg.input], batch["labels"]
        out = self.nets["model"](image)
        losses = {"cls": classification_loss(out["cls"], labels)}
        branches = [(name, out[key]) for name, key in (("student", "s_logits"), ("seg_teacher", "st_logits"))
                    if key in out]
        if iteration < self.mcfg.distill_start:  # zero-weighted so every parameter takes part (DDP)
            losses["student"] = 0.0 * sum(logits.sum() for _, logits in branches)
            return StepOutput(losses=losses)
        target = self.student_target(iteration)
        size = image.shape[-2:]
        # the labels are made at knowledge.scale × the crop (RRM: 1), then upsampled by nearest neighbour
        label_size = tuple(max(1, round(d * self.mcfg.knowledge.scale)) for d in size)
        cams = self.multiscale_cams(image, out["cams"], label_size).cpu().numpy()
        st_probs = None
        if target is not None:
            up = F.interpolate(out["st_logits"].detach().float(), size=label_size, mode="bilinear", align_corners=False)
            st_probs = up.softmax(1).cpu().numpy()
        small = image if label_size == tuple(size) else F.interpolate(image.detach().float(), size=label_size,
                                                                       mode="area")
        jobs = [
            KnowledgeJob(img, cams[i], labels[i].detach().float().cpu().numpy(),
                         None if st_probs is None else st_probs[i], target)
            for i, img in enumerate(_to_uint8_hwc(small))
        ]
        pending = self.workers.submit(jobs)
        all_logits = [logits for _, logits in branches]
        weight = self.mcfg.distill_weight
        if not self.mcfg.structure.unlabelled_gate:  # L_str (Eq. 6-8) needs no labels: computed while the CRFs run
            losses["structure"] = weight * structure_loss(all_logits, image, self.mcfg.structure)
        results = pending()
        b_ct = _labels([r[0] for r in results], size, image.device)
        targets = {"seg_teacher": b_ct, "student": b_ct if target is None else _labels([r[1] for r in results], size,
                                                                                          image.device)}
        if self.mcfg.structure.unlabelled_gate:
            unlabelled = [targets[name] == IGNORE for name, _ in branches]
            losses["structure"] = weight * structure_loss(all_logits, image, self.mcfg.structure, unlabelled)
        for name, logits in branches:
            up = F.interpolate(logits.float(), size=size, mode="bilinear", align_corners=False)
            losses[name] = weight * distillation_ce(up, targets[name], self.mcfg.balanced_ce)
        metrics = {
            "seg_teacher_selected": float(target is not None),
            "reliable_frac": (b_ct != IGNORE).float().mean(),
        }
        return StepOutput(losses=losses, metrics=metrics)
