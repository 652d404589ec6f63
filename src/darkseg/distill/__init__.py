"""Diffusion-guided knowledge distillation: KD distances, noise-prediction network, DDIM sampling, levels."""

from darkseg.distill.denoiser import DiffusionDenoiser
from darkseg.distill.diffusion import DDIMSampler, ddim_timesteps, make_scheduler
from darkseg.distill.level import DiffusionRefiner, DistillLevel, DistillLevelConfig, MultiLevelDistiller
from darkseg.distill.losses import dist_loss, kd_distance, kl_loss, mse_loss

__all__ = [
    "DDIMSampler",
    "DiffusionDenoiser",
    "DiffusionRefiner",
    "DistillLevel",
    "DistillLevelConfig",
    "MultiLevelDistiller",
    "ddim_timesteps",
    "dist_loss",
    "kd_distance",
    "kl_loss",
    "make_scheduler",
    "mse_loss",
]
