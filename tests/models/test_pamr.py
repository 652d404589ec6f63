"""PAMR: parity with the reference values (ssss.md §8) and with an independent gather-based implementation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from darkseg.errors import ConfigError
from darkseg.models.ops.pamr import PAMR

DILATIONS = (1, 2, 4, 8, 12, 24)


def _gather(x: torch.Tensor, dilations: tuple[int, ...], centre: bool) -> torch.Tensor:
    """Stack (B, K, P, H, W) of neighbours by explicit clamped-index gathering."""
    height, width = x.shape[-2:]
    rows, cols = torch.arange(height), torch.arange(width)
    taps = []
    for d in dilations:
        for ky in (-d, 0, d):
            for kx in (-d, 0, d):
                if centre or (ky, kx) != (0, 0):
                    yy, xx = (rows + ky).clamp(0, height - 1), (cols + kx).clamp(0, width - 1)
                    taps.append(x[..., yy[:, None], xx[None, :]])
    return torch.stack(taps, dim=2)


def _naive_pamr(image: torch.Tensor, mask: torch.Tensor, num_iter: int, dilations: tuple[int, ...]) -> torch.Tensor:
    """Straightforward float64 PAMR that materialises every neighbour tensor."""
    image, mask = image.double(), mask.double()
    sigma = _gather(image, dilations, centre=True).std(dim=2, unbiased=True)
    diff = (image[:, :, None] - _gather(image, dilations, centre=False)).abs()
    weights = torch.softmax((-diff / (1e-8 + 0.1 * sigma[:, :, None])).mean(dim=1), dim=1)
    for _ in range(num_iter):
        mask = (_gather(mask, dilations, centre=False) * weights[:, None]).sum(dim=2)
    return mask


def _seeded_input() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 64, 64, generator=g)
    mask = torch.softmax(torch.randn(2, 21, 64, 64, generator=g), dim=1)
    return image, mask


def _random(shape: tuple[int, int, int, int], channels: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    b, _, h, w = shape
    image = torch.rand(shape, generator=g)
    return image, torch.softmax(3 * torch.randn(b, channels, h, w, generator=g), dim=1)


def test_parity_with_reference_values() -> None:
    image, mask = _seeded_input()
    out = PAMR(num_iter=10, dilations=DILATIONS)(image, mask)
    assert out.shape == (2, 21, 64, 64)
    expected = {"mean": 0.047619, "std": 0.021061, "max": 0.755161, "first": 0.037945, "probe": 0.044163}
    got = {"mean": out.mean(), "std": out.std(), "max": out.max(), "first": out[0, 0, 0, 0], "probe": out[1, 5, 10, 20]}
    for key, value in expected.items():
        assert got[key].item() == pytest.approx(value, abs=1e-5), key
    assert PAMR(num_iter=1)(image, mask).std().item() == pytest.approx(0.033366, abs=1e-5)


@pytest.mark.parametrize(
    ("shape", "channels", "num_iter", "dilations"),
    [
        ((2, 3, 13, 30), 4, 3, DILATIONS),
        ((1, 3, 5, 7), 3, 2, DILATIONS),  # smaller than the largest dilation
        ((3, 3, 31, 9), 2, 1, (1, 3)),
        ((1, 1, 6, 6), 5, 4, (2,)),
    ],
)
def test_matches_independent_implementation(shape, channels, num_iter, dilations) -> None:
    image, mask = _random(shape, channels, seed=sum(shape))
    expected = _naive_pamr(image, mask, num_iter, dilations)
    out = PAMR(num_iter=num_iter, dilations=dilations)(image, mask)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), expected, atol=2e-6, rtol=0)
    out64 = PAMR(num_iter=num_iter, dilations=dilations)(image.double(), mask.double())
    torch.testing.assert_close(out64, expected, atol=1e-12, rtol=0)


def test_convex_combination() -> None:
    image, mask = _random((2, 3, 24, 19), 6, seed=1)
    out = PAMR()(image, mask)
    torch.testing.assert_close(out.sum(dim=1), mask.sum(dim=1), atol=1e-5, rtol=0)
    low, high = mask.amin(dim=(2, 3), keepdim=True), mask.amax(dim=(2, 3), keepdim=True)
    assert bool(((out >= low - 1e-6) & (out <= high + 1e-6)).all())


def test_resizes_mask_bilinearly_with_aligned_corners() -> None:
    image, _ = _random((2, 3, 17, 21), 1, seed=2)
    small = torch.softmax(torch.randn(2, 4, 6, 8, generator=torch.Generator().manual_seed(3)), dim=1)
    resized = F.interpolate(small, size=(17, 21), mode="bilinear", align_corners=True)
    out = PAMR(num_iter=2)(image, small)
    assert out.shape == (2, 4, 17, 21)
    torch.testing.assert_close(out.double(), _naive_pamr(image, resized, 2, DILATIONS), atol=2e-6, rtol=0)
    torch.testing.assert_close(PAMR(num_iter=0)(image, small), resized)


def test_images_of_a_batch_do_not_interact() -> None:
    image, mask = _random((5, 3, 12, 10), 3, seed=4)
    whole = PAMR(num_iter=3)(image, mask)
    for i in range(5):
        alone = PAMR(num_iter=3)(image[i : i + 1], mask[i : i + 1])
        torch.testing.assert_close(whole[i : i + 1], alone, atol=1e-6, rtol=0)


def test_low_precision_input_computed_in_float32() -> None:
    image, mask = _random((1, 3, 16, 16), 3, seed=5)
    image16, mask16 = image.bfloat16(), mask.bfloat16()
    out = PAMR(num_iter=3)(image16, mask16)
    assert out.dtype == torch.bfloat16
    expected = PAMR(num_iter=3)(image16.float(), mask16.float())
    torch.testing.assert_close(out.float(), expected, atol=4e-3, rtol=0)  # bfloat16 rounding of the output only


def test_inside_bf16_autocast_computes_in_float32() -> None:
    image, mask = _random((2, 3, 16, 16), 4, seed=6)
    expected = PAMR(num_iter=3)(image, mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = PAMR(num_iter=3)(image, mask)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


def test_module_without_parameters_or_gradients() -> None:
    module = PAMR()
    assert list(module.parameters()) == [] and list(module.buffers()) == []
    image, mask = _random((1, 3, 8, 8), 2, seed=6)
    out = module(image.requires_grad_(), mask.requires_grad_())
    assert not out.requires_grad
    with torch.no_grad():
        torch.testing.assert_close(module(image, mask.detach()), out)


def test_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError, match="num_iter"):
        PAMR(num_iter=-1)
    with pytest.raises(ConfigError, match="dilations"):
        PAMR(dilations=())
    with pytest.raises(ConfigError, match="dilations"):
        PAMR(dilations=(1, 0))


def test_dilations_scale_to_the_mask_grid() -> None:
    from darkseg.models.ops.pamr import scale_dilations

    official = (1, 2, 4, 8, 12, 24)
    assert scale_dilations(official, 81, 24) == (1, 2, 4, 7)  # scenes: 96 crop at stride 4
    assert scale_dilations(official, 81, 81) == official
    assert scale_dilations(official, 81, 162) == (2, 4, 8, 16, 24, 48)
