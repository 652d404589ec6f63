"""A 2x2 preview grid of one darkened image for a person to judge: original, dark, brightened dark, |noise|."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from darkseg.errors import DataError
from darkseg.fileio import atomic_write_bytes
from darkseg.lowlight.config import LowLightConfig
from darkseg.lowlight.imageio import read_image
from darkseg.lowlight.params import image_seed
from darkseg.lowlight.synthesizer import LowLightSynthesizer


def _label(panel: np.ndarray, text: str) -> np.ndarray:
    """The panel as 8-bit RGB with ``text`` in the top-left corner, white on a black outline."""
    img = np.ascontiguousarray(np.rint(np.clip(panel, 0.0, 1.0) * 255).astype(np.uint8))
    for colour, thickness in ((0, 3), (255, 1)):
        cv2.putText(img, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (colour,) * 3, thickness, cv2.LINE_AA)
    return img


def preview_panels(original: np.ndarray, dark: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """8-bit grid [original | dark; dark x mean(original)/mean(dark) | |dark - noise-free| / its 99th percentile]."""
    brightened = dark * (original.mean() / max(float(dark.mean()), 1e-6))
    noise = np.abs(dark - clean).mean(axis=2, keepdims=True)
    noise = np.repeat(noise / max(float(np.percentile(noise, 99)), 1e-6), 3, axis=2)
    top = np.concatenate([_label(original, "original"), _label(dark, "dark")], axis=1)
    bottom = np.concatenate([_label(brightened, "dark x mean ratio"), _label(noise, "|noise| / p99")], axis=1)
    return np.concatenate([top, bottom], axis=0)


def write_preview(image: Path, out: Path, cfg: LowLightConfig, seed: int) -> dict[str, Any]:
    """Darken ``image`` (id = file stem) and write the preview grid as an 8-bit PNG; returns the sampled parameters."""
    if out.suffix.lower() != ".png":
        raise DataError(f"preview output {out} must end in .png")
    img = read_image(image)
    x = torch.from_numpy(img.rgb).permute(2, 0, 1)[None].contiguous()
    synth = LowLightSynthesizer(cfg)
    trace = synth.trace(x, synth.sample([image_seed(seed, image.stem)]))
    dark, clean = (t[0].permute(1, 2, 0).numpy() for t in (trace.out, trace.clean))
    grid = preview_panels(img.rgb, dark, clean)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(grid[:, :, ::-1]))
    if not ok:
        raise DataError(f"cannot encode the preview of {image}")
    atomic_write_bytes(out, buf.tobytes())
    return trace.params[0]
