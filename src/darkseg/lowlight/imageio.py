"""Reading and writing the images ``darkseg synth`` converts: 8/16-bit grey, RGB and RGBA, format kept."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from darkseg.errors import DataError

# Suffix -> encoder options; the output keeps the input's suffix (JPEG quality 95, lossless formats stay lossless).
FORMATS: dict[str, list[int]] = {
    ".jpg": [cv2.IMWRITE_JPEG_QUALITY, 95],
    ".jpeg": [cv2.IMWRITE_JPEG_QUALITY, 95],
    ".png": [cv2.IMWRITE_PNG_COMPRESSION, 3],
    ".bmp": [],
    ".tif": [],
    ".tiff": [],
}
_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


@dataclass
class LoadedImage:
    """An image as float32 RGB in [0, 1] plus what is needed to write it back in its own format."""

    rgb: np.ndarray  # H x W x 3 float32 in [0, 1]
    alpha: np.ndarray | None  # original alpha channel, written back unchanged
    dtype: np.dtype  # uint8 or uint16 sample type of the file
    note: str | None  # explicit conversion made on reading, e.g. "grey converted to RGB"


def read_image(path: Path) -> LoadedImage:
    """Decode an 8/16-bit grey, RGB or RGBA image without EXIF rotation; ``DataError`` names what is wrong."""
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise DataError(f"{path}: cannot read file ({err.strerror})") from None
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise DataError(f"{path}: not a decodable image")
    if img.dtype not in _SCALE:
        raise DataError(f"{path}: unsupported sample type {img.dtype}; convert it to 8- or 16-bit")
    notes = ["16-bit kept"] if img.dtype == np.uint16 else []
    alpha = None
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
        notes.insert(0, "grey converted to RGB")
    elif img.shape[2] == 4:
        img, alpha = img[:, :, :3], img[:, :, 3].copy()
        notes.append("alpha kept")
    elif img.shape[2] != 3:
        raise DataError(f"{path}: unsupported number of channels {img.shape[2]}")
    rgb = img[:, :, ::-1].astype(np.float32) / np.float32(_SCALE[img.dtype])
    return LoadedImage(rgb, alpha, img.dtype, ", ".join(notes) or None)


def encode_image(rgb: np.ndarray, like: LoadedImage, suffix: str) -> bytes:
    """Encode float RGB in [0, 1] with the sample type and alpha of ``like`` in the format of ``suffix``."""
    scale = _SCALE[like.dtype]
    pixels = np.rint(np.clip(rgb, 0.0, 1.0) * scale).astype(like.dtype)[:, :, ::-1]
    if like.alpha is not None:
        pixels = np.concatenate([pixels, like.alpha[:, :, None]], axis=2)
    ok, buf = cv2.imencode(suffix.lower(), np.ascontiguousarray(pixels), FORMATS[suffix.lower()])
    if not ok:
        raise DataError(f"cannot encode a {like.dtype} image with {pixels.shape[2]} channels as {suffix}")
    return buf.tobytes()


