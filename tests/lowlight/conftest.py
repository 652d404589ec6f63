"""Test pictures for the low-light tests, made here (no downloads)."""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import pytest
import torch


def _natural_image(height: int = 96, width: int = 128, seed: int = 0) -> torch.Tensor:
    """A photo-like (3, H, W) picture in [0, 1], mean about 0.4: bright sky, shaded ground, texture, objects."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    ground = [0.25 + 0.15 * np.sin(4.0 * xx + 1.3 * c) * np.cos(3.0 * yy - 0.7 * c) for c in range(3)]
    img = np.stack(ground, axis=-1)
    sky = yy < 0.25
    img[sky] = np.array([0.77, 0.85, 0.93])[None] - 0.2 * yy[sky][:, None]
    img += 0.1 * cv2.GaussianBlur(rng.standard_normal((height, width, 3)), (0, 0), 1.5)
    for _ in range(4):  # flat objects with sharp edges
        y0, x0 = rng.integers(0, height * 3 // 4), rng.integers(0, width * 3 // 4)
        img[y0 : y0 + height // 5, x0 : x0 + width // 5] = rng.uniform(0.05, 0.9, size=3)
    return torch.from_numpy(np.clip(img, 0.0, 1.0).astype(np.float32)).permute(2, 0, 1).contiguous()


@pytest.fixture
def natural_image() -> Callable[..., torch.Tensor]:
    return _natural_image
