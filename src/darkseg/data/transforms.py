"""Paired augmentation (same geometry for image, dark, day, depth, mask and flow) and the evaluation transform.

Both map a NumPy sample (data contract) to tensors: images float32 3×H×W in [0, 1], depth float32 1×H×W, mask int64
H×W, labels float32. Geometry randomness and photometric randomness come from two generators spawned from the one
passed in, so switching jitter on or off does not change the crops.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np
import torch
from pydantic import Field, model_validator

from darkseg.data.base import Sample
from darkseg.schema import StrictModel

IMAGE_VIEWS = ("image", "dark", "day")
_INTERP = {"bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


class JitterConfig(StrictModel):
    """Photometric jitter on the images only, the same parameters for the normal and the dark image."""

    brightness: float = Field(0.3, ge=0)
    contrast: float = Field(0.3, ge=0)
    saturation: float = Field(0.3, ge=0)
    hue: float = Field(0.1, ge=0, le=0.5)
    p: float = Field(1.0, ge=0, le=1)


class AugmentConfig(StrictModel):
    """Training augmentation: random rescale, horizontal flip, random crop with padding, optional jitter."""

    crop_size: int = Field(321, gt=0)
    scale_mode: Literal["long_side", "relative"] = "long_side"
    long_side: tuple[int, int] = (320, 640)
    scale_range: tuple[float, float] = (0.9, 1.1)
    flip: bool = True
    jitter: JitterConfig | None = None
    image_interp: Literal["bilinear", "bicubic"] = "bicubic"

    @model_validator(mode="after")
    def _ranges(self) -> AugmentConfig:
        if not 0 < self.long_side[0] <= self.long_side[1]:
            raise ValueError(f"long_side must be 0 < low <= high, got {self.long_side}")
        if not 0 < self.scale_range[0] <= self.scale_range[1]:
            raise ValueError(f"scale_range must be 0 < low <= high, got {self.scale_range}")
        return self


def _resize(sample: Sample, size: tuple[int, int], interp: int) -> Sample:
    """Resize every view to H×W ``size``: ``interp`` for images and depth, nearest (pixel centres) for masks."""
    h, w = size
    out = dict(sample)
    for key in IMAGE_VIEWS:
        if key in out and out[key].shape[:2] != size:
            out[key] = cv2.resize(out[key], (w, h), interpolation=interp)  # uint8: saturated, no overshoot
    if "depth" in out and out["depth"].shape != size:
        out["depth"] = np.clip(cv2.resize(out["depth"], (w, h), interpolation=interp), 0.0, 1.0)
    if "mask" in out and out["mask"].shape != size:
        out["mask"] = cv2.resize(out["mask"], (w, h), interpolation=cv2.INTER_NEAREST_EXACT)
    if "flow" in out and out["flow"].shape[:2] != size:
        scale = np.array([w / out["flow"].shape[1], h / out["flow"].shape[0]], np.float32)
        out["flow"] = cv2.resize(out["flow"], (w, h), interpolation=cv2.INTER_LINEAR) * scale
    return out


def _flip_flow(flow: np.ndarray) -> np.ndarray:
    """A night→day displacement field of horizontally flipped images: mirrored, x component negated."""
    return flow[:, ::-1] * np.array([-1.0, 1.0], np.float32)


def _view_size(sample: Sample) -> tuple[int, int]:
    for key in (*IMAGE_VIEWS, "depth", "mask"):
        if key in sample:
            return sample[key].shape[0], sample[key].shape[1]
    raise ValueError(f"sample {sample.get('id')!r} has no spatial view")


def _to_tensors(sample: Sample, size: int | None = None, mean: np.ndarray | None = None) -> Sample:
    """NumPy views to contract tensors (uint8 images scaled to [0, 1]); keys outside the contract are dropped.

    With ``size``, every spatial view goes to the top-left of a size×size canvas padded with ``mean`` (images,
    3×1×1), 0 (depth), 255 (mask) or NaN (flow: no correspondence).
    """
    fills = {"image": mean, "dark": mean, "day": mean, "depth": 0.0, "mask": 255, "flow": np.nan}
    out: Sample = {"id": sample["id"]}
    if "labels" in sample:
        out["labels"] = torch.from_numpy(np.asarray(sample["labels"], np.float32))
    for key, value in sample.items():
        if key not in fills:
            continue
        chw = value.transpose(2, 0, 1) if key in (*IMAGE_VIEWS, "flow") else value[None] if key == "depth" else value
        h, w = chw.shape[-2:]
        canvas = np.empty((*chw.shape[:-2], size or h, size or w), np.int64 if key == "mask" else np.float32)
        if canvas.shape != chw.shape:
            canvas[...] = fills[key]
        if chw.dtype == np.uint8 and key in IMAGE_VIEWS:
            np.divide(chw, np.float32(255.0), out=canvas[..., :h, :w], dtype=np.float32)
        else:
            canvas[..., :h, :w] = chw
        out[key] = torch.from_numpy(canvas)
    return out


def jitter_images(images: list[np.ndarray], cfg: JitterConfig, rng: np.random.Generator) -> list[np.ndarray]:
    """Brightness, contrast, saturation, hue (in this order) with one parameter draw for all float [0,1] images."""
    if rng.random() >= cfg.p:
        return images
    b, c, s = (rng.uniform(max(0.0, 1 - x), 1 + x) for x in (cfg.brightness, cfg.contrast, cfg.saturation))
    hue = rng.uniform(-cfg.hue, cfg.hue) * 360.0
    out = []
    for image in images:
        image = image * b
        grey_mean = float((image @ _LUMA).mean())
        image = np.clip((image - grey_mean) * c + grey_mean, 0.0, 1.0)
        grey = (image @ _LUMA)[..., None]
        image = np.clip(grey + (image - grey) * s, 0.0, 1.0).astype(np.float32)
        if hue:
            hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
            hsv[..., 0] = np.mod(hsv[..., 0] + hue, 360.0)
            image = np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), 0.0, 1.0)
        out.append(image)
    return out


class PairedTransform:
    """Random rescale, flip and crop applied identically to all views, then jitter on the images, then tensors.

    Crop padding: images take the normalisation ``mean`` colour, so (mean - mean) / std = 0 after the model's
    normalisation; depth 0; mask 255. Images stay in [0, 1] (models normalise internally).
    """

    def __init__(self, cfg: AugmentConfig, mean: Sequence[float], std: Sequence[float]) -> None:
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0 or not all(0 <= m <= 1 for m in mean):
            raise ValueError(f"mean (in [0, 1]) and std (> 0) need 3 values each; got {mean}, {std}")
        self.cfg = cfg
        self.mean = np.asarray(mean, np.float32)[:, None, None]

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        geo_rng, photo_rng = rng.spawn(2)
        cfg = self.cfg
        h, w = _view_size(sample)
        if cfg.scale_mode == "long_side":
            scale = int(geo_rng.integers(cfg.long_side[0], cfg.long_side[1] + 1)) / max(h, w)
        else:
            scale = float(geo_rng.uniform(*cfg.scale_range))
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        sample = _resize(sample, size, _INTERP[cfg.image_interp])
        flip = cfg.flip and geo_rng.random() < 0.5
        crop = cfg.crop_size
        y0 = int(geo_rng.integers(0, max(size[0] - crop, 0) + 1))
        x0 = int(geo_rng.integers(0, max(size[1] - crop, 0) + 1))
        window = (slice(y0, y0 + crop), slice(x0, x0 + crop))
        out = dict(sample)
        for key in (*IMAGE_VIEWS, "depth", "mask", "flow"):
            if key in out:
                view = (_flip_flow(out[key]) if key == "flow" else out[key][:, ::-1]) if flip else out[key]
                out[key] = view[window]
        images = [k for k in IMAGE_VIEWS if k in out]
        if cfg.jitter is not None:
            floats = [out[k].astype(np.float32) / 255.0 for k in images]
            out.update(zip(images, jitter_images(floats, cfg.jitter, photo_rng)))
        return _to_tensors(out, crop, self.mean)


class EvalTransform:
    """Evaluation: no random geometry; optionally every view resized so the long side is ``long_side``."""

    def __init__(self, long_side: int | None = None, image_interp: Literal["bilinear", "bicubic"] = "bilinear") -> None:
        self.long_side = long_side
        self.interp = _INTERP[image_interp]

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        if self.long_side is not None:
            h, w = _view_size(sample)
            scale = self.long_side / max(h, w)
            sample = _resize(sample, (max(1, round(h * scale)), max(1, round(w * scale))), self.interp)
        return _to_tensors(sample)
