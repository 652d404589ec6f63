"""Linear-β diffusion schedule, forward noising, L_diff and DDIM denoising through diffusers' DDIMScheduler.

Settings of diffkd.md §5 (identical to the official DGKD-WLSS / DiffKD scheduler): 1000 training steps, β linear
1e-4 → 0.02, no sample clipping, ᾱ_prev = 1 after timestep 0, ε-prediction, η = 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler
from torch import Tensor, nn

NUM_TRAIN_TIMESTEPS = 1000


def make_scheduler() -> DDIMScheduler:
    """The DDIM scheduler of diffkd.md §5 (linear β 1e-4 → 0.02 over 1000 steps, Eq. (3)-(4) of DGKD-WLSS)."""
    return DDIMScheduler(
        num_train_timesteps=NUM_TRAIN_TIMESTEPS, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
        clip_sample=False, set_alpha_to_one=True, steps_offset=0, prediction_type="epsilon",
    )


def ddim_timesteps(steps: int, start_timestep: int | None = None) -> tuple[int, list[int]]:
    """(num_inference_steps, timesteps) of the official "half schedule" (diffkd.md §2 item 4), or from a start.

    Without ``start_timestep``: ``set_timesteps(2·steps)`` and its last ``steps`` timesteps (T=5 → 400 … 0).
    With it: ``steps`` timesteps start, start − s, …, 0 with a uniform stride s that diffusers' DDIM step uses,
    i.e. s = 1000 // n for some n ≥ steps. Raises ValueError when no such stride exists.
    """
    if steps < 1:
        raise ValueError(f"DDIM steps must be >= 1, got {steps}")
    if start_timestep is None:
        n = 2 * steps
        stride = NUM_TRAIN_TIMESTEPS // n
        return n, [stride * k for k in reversed(range(steps))]
    if not 0 <= start_timestep < NUM_TRAIN_TIMESTEPS:
        raise ValueError(f"start_timestep must be in [0, {NUM_TRAIN_TIMESTEPS - 1}], got {start_timestep}")
    if steps == 1:
        # one step from t straight to x̂0 needs a stride larger than t (prev timestep < 0 → ᾱ_prev = 1)
        n = max(1, NUM_TRAIN_TIMESTEPS // (start_timestep + 1))
        return n, [start_timestep]
    stride, rest = divmod(start_timestep, steps - 1)
    candidates = [n for n in range(steps, NUM_TRAIN_TIMESTEPS + 1) if NUM_TRAIN_TIMESTEPS // n == stride]
    if rest or not candidates:
        raise ValueError(
            f"start_timestep {start_timestep} with {steps} steps needs a uniform stride "
            f"{start_timestep / (steps - 1):g} ending at 0 that DDIM can take (1000 // n for an integer n >= steps); "
            f"use a multiple of steps - 1 such as {(steps - 1) * (NUM_TRAIN_TIMESTEPS // (2 * steps))} "
            f"or leave it unset for the half schedule"
        )
    return candidates[0], [stride * k for k in reversed(range(steps))]


class DDIMSampler:
    """Forward noising (Eq. 4), the noise-prediction loss (Eq. 5) and η = 0 DDIM denoising (Eq. 6) of DGKD-WLSS.

    The timestep list is built once; timesteps stay Python ints so that the scheduler's CPU ``alphas_cumprod`` is
    never indexed by a device tensor. Holds no parameters (not an ``nn.Module``).
    """

    def __init__(self, steps: int = 5, start_timestep: int | None = None) -> None:
        n, self.timesteps = ddim_timesteps(steps, start_timestep)
        self.scheduler = make_scheduler()
        self.scheduler.set_timesteps(n)

    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε, Eq. (4) of DGKD-WLSS; ``t`` is a LongTensor of shape (B,)."""
        return self.scheduler.add_noise(x0, noise, t)

    def diffusion_loss(self, denoiser: nn.Module, x0: Tensor) -> Tensor:
        """L_diff = MSE(ε_θ(x_t, t), ε) with t ~ U{0..999} per sample and ε ~ N(0, I), Eq. (5) of DGKD-WLSS."""
        x0 = x0.detach()
        t = torch.randint(0, NUM_TRAIN_TIMESTEPS, (x0.shape[0],), device=x0.device)
        noise = torch.randn_like(x0)
        return F.mse_loss(denoiser(self.q_sample(x0, t, noise), t).float(), noise.float())

    def denoise(self, x: Tensor, denoiser: nn.Module) -> Tensor:
        """Differentiable η = 0 DDIM from x = x_{timesteps[0]} to x̂0, Eq. (6) of DGKD-WLSS."""
        for t in self.timesteps:
            x = self.scheduler.step(denoiser(x, t), t, x).prev_sample
        return x


__all__ = ["NUM_TRAIN_TIMESTEPS", "DDIMSampler", "ddim_timesteps", "make_scheduler"]
