"""Preview grid of alignments: night | day | day warped by the homography | day warped by the fine flow | overlay."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from darkseg.align.estimate import Alignment, homography_flow, mask_outside, warp

COLUMNS = ("night (contrast-stretched)", "day", "day warped: homography", "day warped: fine flow",
           "overlay night/fine")


def _stretch(rgb: np.ndarray) -> np.ndarray:
    """Per-image 1-99 percentile stretch so that a night image is visible."""
    lo, hi = np.percentile(rgb, (1, 99))
    return np.clip((rgb.astype(np.float32) - lo) * 255.0 / max(hi - lo, 1.0), 0, 255).astype(np.uint8)


def preview_row(night: np.ndarray, day: np.ndarray, result: Alignment, height: int = 120) -> np.ndarray:
    """One row of the grid, ``height`` pixels high (warps of a failed pair are grey tiles)."""
    work = (round(night.shape[1] * result.scale), round(night.shape[0] * result.scale))
    interp = cv2.INTER_AREA if result.scale < 1 else cv2.INTER_CUBIC
    night_w = _stretch(cv2.resize(night, work, interpolation=interp))
    day_w = cv2.resize(day, work, interpolation=interp)
    blank = np.full_like(night_w, 128)
    coarse = fine = blank
    if result.homography is not None:
        flow = mask_outside(homography_flow(result.homography, night_w.shape[:2]), night_w.shape[:2])
        coarse = warp(day_w, flow)[0]
    if result.fine is not None:
        fine = warp(day_w, result.fine)[0]
    overlay = (0.5 * night_w + 0.5 * fine).astype(np.uint8) if result.fine is not None else blank
    size = (max(1, round(work[0] * height / work[1])), height)
    tiles = [cv2.resize(t, size, interpolation=cv2.INTER_AREA) for t in (night_w, day_w, coarse, fine, overlay)]
    return np.concatenate([np.pad(t, ((1, 1), (1, 1), (0, 0)), constant_values=255) for t in tiles], 1)


def write_grid(path: Path, rows: list[np.ndarray]) -> None:
    """Stack rows (same width) into one PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.ascontiguousarray(np.concatenate(rows, 0)[..., ::-1]))
