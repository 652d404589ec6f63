"""The synthesis pipeline against closed forms and the noise model; determinism and geometry."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from darkseg.lowlight import LowLightConfig, LowLightSynthesizer
from darkseg.lowlight.pipeline import demosaic_bilinear, inverse_tone_curve, mosaic


def fixed(**changes: Any) -> dict[str, Any]:
    """Hand-set parameters (the photon-transfer setting of the reference notes)."""
    p = {"ccm_index": 0, "ccm_weights": [1.0, 0.0, 0.0, 0.0], "gamma": 2.2, "gain": 0.8, "red": 2.15, "blue": 1.7,
         "darkness": 0.1, "shot": 3e-3, "read": 1e-5, "beta": 12, "field_seed": 11}
    return {**p, **changes}


def closed_form(x: torch.Tensor, params: list[dict[str, Any]]) -> np.ndarray:
    """Noise-free output (k g)^(1/gamma) s^-1(x), computed in float64 with NumPy."""
    kg = np.array([p["darkness"] * p["gain"] for p in params])[:, None, None, None]
    inv_gamma = 1.0 / np.array([p["gamma"] for p in params])[:, None, None, None]
    s_inv = 0.5 - np.sin(np.arcsin(1.0 - 2.0 * x.double().numpy()) / 3.0)
    return kg**inv_gamma * s_inv


def test_inverse_tone_curve_inverts_smoothstep() -> None:
    y = torch.linspace(0, 1, 1001, dtype=torch.float64)
    x = 3 * y**2 - 2 * y**3
    torch.testing.assert_close(inverse_tone_curve(x), y, atol=1e-6, rtol=0)


@pytest.mark.parametrize("preset", ["maet", "no-noise"])
def test_noise_free_output_is_the_closed_form(preset: str, natural_image: Callable[..., torch.Tensor]) -> None:
    synth = LowLightSynthesizer(LowLightConfig(preset=preset))
    x = torch.stack([natural_image(48, 64, seed=i) for i in range(8)])
    params = synth.sample(range(8))
    trace = synth.trace(x, params)
    assert len({p["ccm_index"] for p in params}) > 1
    ref = closed_form(x, params)
    mask = x.numpy() > 0.05
    assert np.abs(trace.clean.double().numpy() - ref)[mask].max() < 1e-5
    if preset == "no-noise":
        assert torch.equal(trace.out, trace.clean)


def test_raw_noise_matches_shot_read_model() -> None:
    levels = torch.linspace(0.1, 0.95, 12)
    x = levels.repeat_interleave(250)[None, None, :, None].expand(1, 3, -1, 400).contiguous()  # 12 flat bands
    shot, read = 2e-3, 2e-5
    trace = LowLightSynthesizer().trace(x, [fixed(darkness=0.5, shot=shot, read=read)])
    clean = trace.clean_raw[0].reshape(3, 12, -1).double()
    noise = (trace.noisy_raw - trace.clean_raw)[0].reshape(3, 12, -1).double()
    level = clean.mean(dim=-1)
    assert (clean.amax(dim=-1) - clean.amin(dim=-1)).max() < 1e-6  # each band is flat
    var = noise.var(dim=-1)
    n = noise.shape[-1]
    torch.testing.assert_close(var, shot * level + read, rtol=0.03, atol=0)
    assert (noise.mean(dim=-1).abs() < 4 * var.sqrt() / n**0.5).all()
    fit = np.polyfit(level.flatten().numpy(), var.flatten().numpy(), 1)
    pred = np.polyval(fit, level.flatten().numpy())
    r2 = 1 - ((var.flatten().numpy() - pred) ** 2).sum() / ((var.flatten().numpy() - var.mean().item()) ** 2).sum()
    assert r2 > 0.99
    assert abs(fit[0] / shot - 1) < 0.03 and abs(fit[1] / read - 1) < 0.15


@pytest.mark.parametrize("beta", [12, 16])
def test_uniform_quantisation_noise(beta: int, natural_image: Callable[..., torch.Tensor]) -> None:
    trace = LowLightSynthesizer().trace(natural_image(200, 300)[None], [fixed(beta=beta)])
    q = (trace.quantised_raw - trace.noisy_raw).double()
    half = 1.0 / (255 * beta)
    assert q.abs().max() <= half * (1 + 1e-3)
    assert abs(q.var().item() / (half**2 / 3) - 1) < 0.03
    assert abs(q.mean().item()) < 4 * half / 3**0.5 / q.numel() ** 0.5


def test_rounding_quantisation(natural_image: Callable[..., torch.Tensor]) -> None:
    synth = LowLightSynthesizer(LowLightConfig(quantisation="round", round_levels=255))
    trace = synth.trace(natural_image(48, 64)[None], synth.sample([4]))
    assert trace.params[0]["beta"] is None
    steps = trace.quantised_raw.double() * 255
    torch.testing.assert_close(steps, steps.round(), atol=1e-4, rtol=0)
    assert (trace.quantised_raw - trace.noisy_raw).abs().max() <= 0.5 / 255 + 1e-6


def test_brightness_over_200_draws(natural_image: Callable[..., torch.Tensor]) -> None:
    x = natural_image()
    assert abs(x.mean().item() - 0.4) < 0.03
    synth = LowLightSynthesizer()
    out, params = synth(x[None].expand(200, -1, -1, -1).contiguous(), list(range(200)), return_params=True)
    ratio = (out.mean(dim=(1, 2, 3)) / x.mean()).numpy()
    assert 0.37 <= np.median(ratio) <= 0.44
    assert 0.17 <= np.percentile(ratio, 5) <= 0.28 and 0.50 <= np.percentile(ratio, 95) <= 0.65
    # A plain linear darkening out = k x would be about 3.5x darker.
    assert np.median(ratio) > 3 * np.median([p["darkness"] for p in params])


def test_deterministic_per_seed_and_batch_independent(natural_image: Callable[..., torch.Tensor]) -> None:
    synth = LowLightSynthesizer()
    x = torch.stack([natural_image(40, 56, seed=i) for i in range(3)])
    out, params = synth(x, [10, 11, 12], return_params=True)
    assert torch.equal(out, synth(x, [10, 11, 12]))
    assert torch.equal(out[1:2], synth(x[1:2], [11]))  # an image's output does not depend on its batch
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert torch.equal(out, synth(x, [10, 11, 12]))
    finally:
        torch.set_num_threads(threads)
    other = synth(x, [20, 21, 22])
    assert all(not torch.equal(out[i], other[i]) for i in range(3))
    assert params != synth.sample([20, 21, 22])
    from_sidecar = json.loads(json.dumps(params))  # parameters written as JSON reproduce the output exactly
    assert torch.equal(synth.render(x, from_sidecar), out)
    assert torch.equal(pickle.loads(pickle.dumps(synth))(x, [10, 11, 12]), out)  # usable in worker processes


def test_shapes_dtype_range_and_bad_input() -> None:
    synth = LowLightSynthesizer()
    x = torch.rand(2, 3, 37, 53, dtype=torch.float64)
    out = synth(x, [1, 2])
    assert out.shape == x.shape and out.dtype == torch.float32 and out.device == x.device
    assert out.min() >= 0 and out.max() <= 1
    assert synth(torch.full((1, 3, 8, 8), 1.5), [0]).isfinite().all()  # out-of-range input is clipped, not NaN
    with pytest.raises(ValueError, match="seeds"):
        synth(x, [1])
    with pytest.raises(ValueError, match="B, 3, H, W"):
        synth(x[:, :1], [1, 2])
    quiet = LowLightSynthesizer(LowLightConfig(preset="no-noise")).sample([1, 2])
    with pytest.raises(ValueError, match="shot"):
        synth.render(x, quiet)  # parameters sampled without noise cannot drive the noisy pipeline


@pytest.mark.parametrize("preset", ["maet", "brooks"])
def test_no_pixel_shift(preset: str, natural_image: Callable[..., torch.Tensor]) -> None:
    x = natural_image(64, 80)[None]
    params = [fixed(shot=1e-4, read=1e-8, darkness=0.3)]
    out = LowLightSynthesizer(LowLightConfig(preset=preset)).render(x, params)[0].double().numpy()
    ref = closed_form(x, params)[0]

    def corr(dy: int, dx: int) -> float:
        a = out[:, 2 + dy : 62 + dy, 2 + dx : 78 + dx].ravel()
        return float(np.corrcoef(a, ref[:, 2:62, 2:78].ravel())[0, 1])

    scores = {(dy, dx): corr(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
    assert scores[(0, 0)] > 0.9 and max(scores, key=scores.__getitem__) == (0, 0)


def test_bayer_mosaic_and_bilinear_demosaic() -> None:
    x = torch.rand(1, 3, 6, 8, dtype=torch.float64)
    m = mosaic(x)
    assert m.shape == (1, 1, 6, 8)
    assert m[0, 0, 0, 0] == x[0, 0, 0, 0] and m[0, 0, 0, 1] == x[0, 1, 0, 1]
    assert m[0, 0, 1, 0] == x[0, 1, 1, 0] and m[0, 0, 1, 1] == x[0, 2, 1, 1]
    yy, xx = torch.meshgrid(torch.arange(10.0), torch.arange(12.0), indexing="ij")
    ramp = torch.stack([0.1 + 0.01 * yy + 0.02 * xx, 0.5 - 0.01 * xx, 0.2 + 0.03 * yy])[None].double()
    rec = demosaic_bilinear(mosaic(ramp))
    torch.testing.assert_close(rec[..., 1:-1, 1:-1], ramp[..., 1:-1, 1:-1])  # bilinear is exact on linear ramps


def test_brooks_preset_on_flat_colour_is_the_closed_form() -> None:
    synth = LowLightSynthesizer(LowLightConfig(preset="brooks"))
    x = torch.tensor([0.6, 0.4, 0.2])[None, :, None, None].expand(1, 3, 9, 11).contiguous()
    trace = synth.trace(x, synth.sample([3]))
    assert trace.clean_raw.shape == (1, 1, 9, 11) and trace.out.shape == x.shape
    assert np.abs(trace.clean.double().numpy() - closed_form(x, trace.params)).max() < 1e-5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu_without_noise(natural_image: Callable[..., torch.Tensor]) -> None:
    synth = LowLightSynthesizer()
    x = natural_image(48, 64)[None]
    params = synth.sample([5])
    cpu, gpu = synth.trace(x, params), synth.trace(x.cuda(), params)
    assert gpu.out.device.type == "cuda"
    torch.testing.assert_close(gpu.clean.cpu(), cpu.clean, atol=1e-5, rtol=0)
    assert torch.equal(synth.render(x.cuda(), params), gpu.out)
