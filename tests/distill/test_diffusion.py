"""DDIM half schedule, q_sample, L_diff and the 5-step loop against a hand-written DDIM (NumPy ᾱ)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from darkseg.distill.denoiser import DiffusionDenoiser
from darkseg.distill.diffusion import DDIMSampler, ddim_timesteps, make_scheduler, randn_like

# closed form of the linear schedule, Eq. (3) of DGKD-WLSS: ᾱ_t = Π_{s<=t} (1 − β_s), β linear 1e-4 → 0.02
ALPHA_BAR = np.cumprod(1.0 - np.linspace(1e-4, 0.02, 1000))


@pytest.mark.parametrize(
    ("steps", "expected"),
    [(4, [375, 250, 125, 0]), (5, [400, 300, 200, 100, 0]), (6, [415, 332, 249, 166, 83, 0])],
)
def test_half_schedule_timesteps(steps, expected):
    n, timesteps = ddim_timesteps(steps)
    assert (n, timesteps) == (2 * steps, expected)
    scheduler = make_scheduler()
    scheduler.set_timesteps(2 * steps)
    assert scheduler.timesteps[steps:].tolist() == expected


def test_explicit_start_timestep():
    assert ddim_timesteps(5, 400) == ddim_timesteps(5)
    assert ddim_timesteps(6, 415) == ddim_timesteps(6)
    assert ddim_timesteps(4, 600) == (5, [600, 400, 200, 0])
    n, timesteps = ddim_timesteps(1, 250)
    assert timesteps == [250] and 1000 // n > 250  # one step straight to x̂0
    for steps, start in [(5, 450), (4, 900), (3, 0)]:
        with pytest.raises(ValueError, match="uniform stride"):
            ddim_timesteps(steps, start)


def test_scheduler_alphas_match_closed_form():
    np.testing.assert_allclose(make_scheduler().alphas_cumprod.double().numpy(), ALPHA_BAR, rtol=1e-5)


def test_q_sample_matches_formula():
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(3, 2, 4, 4, generator=g), torch.randn(3, 2, 4, 4, generator=g)
    t = torch.tensor([0, 400, 999])
    a = torch.tensor(ALPHA_BAR[t.numpy()], dtype=torch.float32)[:, None, None, None]
    expected = a.sqrt() * x0 + (1 - a).sqrt() * noise
    torch.testing.assert_close(DDIMSampler().q_sample(x0, t, noise), expected, rtol=1e-5, atol=1e-6)


def _hand_ddim(x: torch.Tensor, net: DiffusionDenoiser, timesteps: list[int], stride: int) -> torch.Tensor:
    for t in timesteps:
        a_t = ALPHA_BAR[t]
        a_prev = ALPHA_BAR[t - stride] if t - stride >= 0 else 1.0
        eps = net(x, t)
        x0_hat = (x - np.sqrt(1 - a_t) * eps) / np.sqrt(a_t)
        x = np.sqrt(a_prev) * x0_hat + np.sqrt(1 - a_prev) * eps
    return x


@pytest.mark.parametrize("steps", [4, 5, 6])
def test_denoise_matches_hand_written_ddim(steps):
    torch.manual_seed(0)
    net = DiffusionDenoiser(4).double().eval()
    x = torch.randn(2, 4, 5, 5, dtype=torch.float64)
    sampler = DDIMSampler(steps)
    stride = 1000 // (2 * steps)
    with torch.no_grad():
        out, ref = sampler.denoise(x, net), _hand_ddim(x, net, sampler.timesteps, stride)
    # diffusers stores ᾱ in float32 (relative error up to 3.6e-7 against the float64 closed form)
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=5e-6)


@pytest.mark.parametrize(("steps", "start"), [(5, None), (4, 600), (1, 250), (6, None)])
def test_step_coefficients_reproduce_diffusers_step(steps, start):
    """The fused update a_t·x + b_t·ε̂ equals DDIMScheduler.step (η = 0, no clipping) at every timestep."""
    sampler = DDIMSampler(steps, start)
    gen = torch.Generator().manual_seed(1)
    for t, (a, b) in zip(sampler.timesteps, sampler.coefficients, strict=True):
        x, eps = torch.randn(2, 3, 4, 4, generator=gen), torch.randn(2, 3, 4, 4, generator=gen)
        expected = sampler.scheduler.step(eps, t, x, eta=0.0).prev_sample
        torch.testing.assert_close(a * x + b * eps, expected, rtol=1e-5, atol=1e-5)


def test_randn_like_keeps_layout_and_statistics():
    x = torch.zeros(8, 6, 20, 20).contiguous(memory_format=torch.channels_last)
    noise = randn_like(x)
    assert noise.shape == x.shape and noise.is_contiguous(memory_format=torch.channels_last)
    assert abs(noise.mean().item()) < 0.02 and abs(noise.std().item() - 1) < 0.02
    assert randn_like(torch.zeros(2, 3)).shape == (2, 3)


def test_gradients_flow_through_every_step_into_input_and_denoiser():
    torch.manual_seed(0)
    net = DiffusionDenoiser(4)
    x = torch.randn(2, 4, 5, 5, requires_grad=True)
    used: list[int] = []
    net.register_forward_pre_hook(lambda _m, args: used.append(args[1]))
    DDIMSampler(5).denoise(x, net).square().mean().backward()
    assert used == [400, 300, 200, 100, 0]
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert net.time_embed.weight.grad[[400, 300, 200, 100, 0]].abs().sum(dim=1).min() > 0


def test_diffusion_loss_trains_denoiser_only():
    torch.manual_seed(0)
    net = DiffusionDenoiser(4)
    x0 = torch.randn(8, 4, 3, 3, requires_grad=True)
    seen: list[torch.Tensor] = []
    net.register_forward_pre_hook(lambda _m, args: seen.append(args[1]))
    loss = DDIMSampler().diffusion_loss(net, x0)
    loss.backward()
    assert x0.grad is None
    assert net.out[0].weight.grad is not None
    (t,) = seen
    assert t.shape == (8,) and t.dtype == torch.long and 0 <= t.min() and t.max() <= 999
    assert loss.item() == pytest.approx(2.0, abs=0.5)  # ε̂ ⟂ ε at random init, both about unit variance


def test_diffusion_loss_draws_from_the_given_generator_only():
    sampler, denoiser = DDIMSampler(5), DiffusionDenoiser(4)
    x0 = torch.randn(3, 4, 6, 6).contiguous(memory_format=torch.channels_last)
    state = torch.get_rng_state()
    a = sampler.diffusion_loss(denoiser, x0, torch.Generator().manual_seed(5))
    b = sampler.diffusion_loss(denoiser, x0, torch.Generator().manual_seed(5))
    c = sampler.diffusion_loss(denoiser, x0, torch.Generator().manual_seed(6))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, b) and not torch.equal(a, c)
