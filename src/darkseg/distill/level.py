"""Distillation levels: teacher target, student adapter, diffusion denoising and KD distance (§3.2 of DGKD-WLSS).

A level is a training-only criterion: nothing in it belongs to the deployed student.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, model_validator
from torch import Tensor, nn

from darkseg.distill.denoiser import DiffusionDenoiser, conv_bn
from darkseg.distill.diffusion import NUM_TRAIN_TIMESTEPS, DDIMSampler, ddim_timesteps
from darkseg.distill.losses import kd_distance
from darkseg.errors import ConfigError
from darkseg.schema import StrictModel


class DistillLevelConfig(StrictModel):
    """One distillation level (one DiffKD module of the official code, plus darkseg's target/adapter options)."""

    teacher_transform: Literal["identity", "random_frozen", "autoencoder"] = "identity"
    student_adapter: Literal["none", "conv1x1", "conv3x3_bn_relu"] = "none"
    latent_channels: PositiveInt | None = None  # None: the teacher's channel count
    denoise: bool = True  # False: plain KD on the adapted student feature (Table 2(a) "+ DIST/KL/MSE")
    loss: Literal["dist", "kl", "mse"] = "dist"
    tau: PositiveFloat = 1.0
    steps: PositiveInt = 5
    start_timestep: int | None = Field(default=None, ge=0, lt=NUM_TRAIN_TIMESTEPS)  # None: half schedule
    bottleneck_ratio: PositiveFloat = 1.0
    weight_diff: NonNegativeFloat = 1.0
    weight_kd: NonNegativeFloat = 1.0
    weight_ae: NonNegativeFloat = 1.0
    pool: PositiveInt = Field(
        1, description="distil at 1/pool of the feature resolution: student and teacher features average-pooled "
                       "(ceil mode) by this factor first; 1 = official (a cheaper departure, e.g. 2 puts Layer 3 on the "
                       "stride-8 grid)"
    )

    @model_validator(mode="after")
    def _check_schedule(self) -> DistillLevelConfig:
        ddim_timesteps(self.steps, self.start_timestep)
        return self


class RandomProjection(nn.Module):
    """Frozen seeded random conv3×3 (bias) + BN (identity running stats) + ReLU: the official teacher heads.

    dgkd-official.md §3: the teacher checkpoints lack ``feat``/``feat2``, so the reference targets are
    ReLU(BN(RandConv3×3(f_T))). Weights: Kaiming normal (fan_in, ReLU gain) from ``seed``, bias 0. Always in eval.
    """

    def __init__(self, c_in: int, c_out: int, seed: int) -> None:
        super().__init__()
        conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        generator = torch.Generator().manual_seed(seed)
        nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu", generator=generator)
        nn.init.zeros_(conv.bias)
        self.body = nn.Sequential(conv, nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))
        self.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> RandomProjection:
        return super().train(False)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class LinearAutoencoder(nn.Module):
    """DiffKD's teacher autoencoder: encoder 1×1 conv + BN, decoder 1×1 conv (diffkd.md §1.1)."""

    def __init__(self, channels: int, latent_channels: int) -> None:
        super().__init__()
        self.encoder = conv_bn(channels, latent_channels)
        self.decoder = nn.Conv2d(latent_channels, channels, 1)

    def forward(self, f_t: Tensor) -> tuple[Tensor, Tensor]:
        """(detached latent target, L_ae = MSE(F_t, Dec(Enc(F_t)))), diffkd.md §1.1."""
        latent = self.encoder(f_t)
        return latent.detach(), F.mse_loss(self.decoder(latent).float(), f_t.float())


class DiffusionRefiner(nn.Module):
    """ε_θ, its DDIM sampler and the 1×1 conv + BN ``proj``: one official DiffKD module (§3.2 of DGKD-WLSS)."""

    def __init__(self, channels: int, bottleneck_ratio: float, steps: int, start_timestep: int | None) -> None:
        super().__init__()
        self.denoiser = DiffusionDenoiser(channels, bottleneck_ratio)
        self.proj = conv_bn(channels, channels)
        self.sampler = DDIMSampler(steps, start_timestep)

    def diffusion_loss(self, target: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """L_diff on the (detached) teacher target, Eq. (5) of DGKD-WLSS; noise drawn from ``generator``."""
        return self.sampler.diffusion_loss(self.denoiser, target, generator)

    def forward(self, student: Tensor) -> Tensor:
        """proj(DDIM-denoised student), the F̄_d of Eq. (7) of DGKD-WLSS."""
        return self.proj(self.sampler.denoise(student, self.denoiser))


def _student_adapter(kind: str, c_in: int, c_out: int) -> nn.Module:
    if kind == "conv1x1":
        return nn.Conv2d(c_in, c_out, 1)
    if kind == "conv3x3_bn_relu":
        return nn.Sequential(conv_bn(c_in, c_out, 3), nn.ReLU(inplace=True))
    return nn.Identity()


class DistillLevel(nn.Module):
    """L_diff (Eq. 5) on the teacher target + L_kd = D(proj(DDIM(adapter(F_d))), target) (Eq. 6-7) of DGKD-WLSS.

    ``forward`` returns the weighted terms ``diff`` (if ``denoise``), ``kd`` and ``ae`` (autoencoder target only).
    The teacher feature never receives gradients; the frozen random transform runs without autograd; the
    autoencoder is trained by L_ae alone. The denoiser is trained by L_diff and by L_kd (official behaviour;
    its BatchNorm sees both the noisy teacher inputs and the student trajectory, diffkd.md §2 item 8).
    Weights and inputs are channels-last (faster small convolutions; stride-1 only, see the README on oneDNN).
    """

    def __init__(self, cfg: DistillLevelConfig, student_channels: int, teacher_channels: int, seed: int = 1) -> None:
        super().__init__()
        self.cfg = cfg
        latent = cfg.latent_channels or teacher_channels
        if cfg.teacher_transform == "identity" and latent != teacher_channels:
            raise ConfigError(
                f"latent_channels: {latent} differs from the teacher's {teacher_channels} channels; "
                "use teacher_transform random_frozen or autoencoder, or leave latent_channels unset"
            )
        if cfg.student_adapter == "none" and student_channels != latent:
            raise ConfigError(
                f"student_adapter: none needs student channels ({student_channels}) equal to latent_channels "
                f"({latent}); use conv1x1 or conv3x3_bn_relu"
            )
        self.random_projection = (
            RandomProjection(teacher_channels, latent, seed) if cfg.teacher_transform == "random_frozen" else None
        )
        self.autoencoder = (
            LinearAutoencoder(teacher_channels, latent) if cfg.teacher_transform == "autoencoder" else None
        )
        self.adapter = _student_adapter(cfg.student_adapter, student_channels, latent)
        self.refiner = (
            DiffusionRefiner(latent, cfg.bottleneck_ratio, cfg.steps, cfg.start_timestep) if cfg.denoise else None
        )
        self.to(memory_format=torch.channels_last)

    def _target(self, f_t: Tensor) -> tuple[Tensor, Tensor | None]:
        """Detached teacher target in the latent space, and L_ae when the autoencoder makes it."""
        f_t = f_t.detach().float()
        if self.autoencoder is not None:
            return self.autoencoder(f_t)
        if self.random_projection is not None:
            with torch.no_grad():
                return self.random_projection(f_t), None
        return f_t, None

    def forward(self, f_s: Tensor, f_t: Tensor, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Weighted loss terms of one level: Σ (L_diff + L_kd) summand of Eq. (14) of DGKD-WLSS (+ L_ae).

        The diffusion noise comes from ``generator`` (default: the global RNG).
        """
        if f_s.shape[0] != f_t.shape[0] or f_s.shape[2:] != f_t.shape[2:]:
            raise ValueError(
                f"student {tuple(f_s.shape)} and teacher {tuple(f_t.shape)} features need the same batch and "
                "spatial size; resize one of them before distilling"
            )
        cfg = self.cfg
        if cfg.pool > 1:
            f_s, f_t = (F.avg_pool2d(f, cfg.pool, ceil_mode=True) for f in (f_s, f_t))
        f_s, f_t = (f.contiguous(memory_format=torch.channels_last) for f in (f_s, f_t))
        target, ae_loss = self._target(f_t)
        student = self.adapter(f_s)
        losses: dict[str, Tensor] = {}
        if self.refiner is not None:
            losses["diff"] = cfg.weight_diff * self.refiner.diffusion_loss(target, generator)
            student = self.refiner(student)
        losses["kd"] = cfg.weight_kd * kd_distance(cfg.loss, student, target, cfg.tau)
        if ae_loss is not None:
            losses["ae"] = cfg.weight_ae * ae_loss
        return losses


class MultiLevelDistiller(nn.Module):
    """All distillation levels in one module, called once per iteration: the Σ_{i=1..m} of Eq. (14) of DGKD-WLSS."""

    def __init__(self, levels: Mapping[str, DistillLevel]) -> None:
        super().__init__()
        self.levels = nn.ModuleDict(dict(levels))

    @classmethod
    def build(
        cls,
        cfgs: Mapping[str, DistillLevelConfig],
        student_channels: Mapping[str, int],
        teacher_channels: Mapping[str, int],
        seed: int = 1,
    ) -> MultiLevelDistiller:
        """One ``DistillLevel`` per config entry; channel counts are looked up by level name."""
        for name in cfgs:
            for side, channels in (("student", student_channels), ("teacher", teacher_channels)):
                if name not in channels:
                    raise ConfigError(
                        f"distill level {name!r} is not a {side} feature; available: {', '.join(sorted(channels))}"
                    )
        return cls({
            name: DistillLevel(cfg, student_channels[name], teacher_channels[name], seed)
            for name, cfg in cfgs.items()
        })

    def forward(
        self, student_feats: Mapping[str, Tensor], teacher_feats: Mapping[str, Tensor],
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """``{"<level>/<term>": loss}`` for every level and term; diffusion noise drawn from ``generator``."""
        losses: dict[str, Tensor] = {}
        for name, level in self.levels.items():
            if name not in student_feats or name not in teacher_feats:
                raise KeyError(f"distill level {name!r} needs a student and a teacher feature of that name")
            for term, value in level(student_feats[name], teacher_feats[name], generator).items():
                losses[f"{name}/{term}"] = value
        return losses


__all__ = [
    "DiffusionRefiner",
    "DistillLevel",
    "DistillLevelConfig",
    "LinearAutoencoder",
    "MultiLevelDistiller",
    "RandomProjection",
]
