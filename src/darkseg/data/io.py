"""Reading images, masks and depth maps with one-line errors; palette PNG writing; the VOC classes and palette."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from darkseg.errors import DataError

VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip

# Largest median distance (in 8-bit RGB units) between a 3-channel depth map and the INFERNO colour map that is
# still read as an INFERNO rendering (Depth-Anything `run.py` without `--grayscale`); JPEG-like noise stays below.
_COLORMAP_TOLERANCE = 12.0

DEPTH_HINT = (
    "make the depth maps with 'darkseg depth SRC DST --model M --weights DIR' (DST = data.depth_dir under "
    "data.root) or set data.depth_dir to the folder that holds them"
)
"""What to do about a missing depth map or folder (the depth prior of DGF2 needs one per image)."""


def _voc_palette() -> np.ndarray:
    """The standard PASCAL VOC colour map: 256 RGB colours built from the bits of the class index."""
    palette = np.zeros((256, 3), np.uint8)
    for index in range(256):
        value, r, g, b = index, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= (value & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
        palette[index] = (r, g, b)
    return palette


VOC_PALETTE: np.ndarray = _voc_palette()
VOC_PALETTE.setflags(write=False)


def _open(path: Path) -> Image.Image:
    """Open and fully decode ``path`` with Pillow, turning every decoding failure into a DataError."""
    if not path.is_file():
        raise DataError(f"{path}: file not found; restore it or remove its id from the list file")
    try:
        with Image.open(path) as im:
            im.load()
            return im
    except Exception as err:  # Pillow raises many types (OSError, SyntaxError, struct.error, ...)
        raise DataError(f"{path}: unreadable or truncated image ({err}); replace the file") from None


def read_image(path: Path) -> np.ndarray:
    """Read an image as uint8 H×W×3 RGB (grey, palette, alpha and 16-bit grey inputs are converted)."""
    im = _open(path)
    if im.mode.startswith("I;16"):
        grey = (np.asarray(im, dtype=np.uint16) >> 8).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    return np.array(im.convert("RGB"))  # a writable copy


def read_mask(path: Path) -> np.ndarray:
    """Read a label mask as uint8 H×W class ids from a palette or grey PNG (255 = ignore; values not checked)."""
    im = _open(path)
    if im.mode in ("P", "L"):
        return np.array(im)
    if im.mode == "1" or im.mode.startswith("I"):
        values = np.asarray(im).astype(np.int64)
        if values.min() >= 0 and values.max() <= 255:
            return values.astype(np.uint8)
        raise DataError(f"{path}: mask values outside 0..255; save class ids 0..C-1 (255 = ignore) as 8-bit")
    raise DataError(
        f"{path}: mask has colour mode {im.mode!r}; save class ids as a palette or 8-bit grey PNG (255 = ignore)"
    )


def _depth_from_colour(bgr: np.ndarray, path: Path) -> np.ndarray:
    """One channel from a 3-channel depth map: equal channels are grey; otherwise invert the INFERNO colour map."""
    if (bgr[..., 0] == bgr[..., 1]).all() and (bgr[..., 1] == bgr[..., 2]).all():
        return bgr[..., 0]
    if bgr.dtype != np.uint8:
        raise DataError(f"{path}: 16-bit depth map with differing colour channels; save one grey channel")
    codes = (bgr[..., 0].astype(np.int32) << 16) | (bgr[..., 1].astype(np.int32) << 8) | bgr[..., 2]
    unique, inverse = np.unique(codes, return_inverse=True)
    colours = np.stack([unique >> 16, (unique >> 8) & 255, unique & 255], -1).astype(np.float32)
    inferno = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_INFERNO)[:, 0]
    dist = np.sqrt(((colours[:, None] - inferno[None].astype(np.float32)) ** 2).sum(-1))
    if float(np.median(dist.min(1)[inverse])) > _COLORMAP_TOLERANCE:
        raise DataError(
            f"{path}: depth map channels differ and are not an INFERNO rendering; save depth as one grey channel"
        )
    return dist.argmin(1).astype(np.uint8)[inverse].reshape(bgr.shape[:2])


def read_depth(path: Path) -> np.ndarray:
    """Read a depth map as float32 H×W in [0, 1].

    PNG: 8- or 16-bit, 1, 3 or 4 channels (grey replicated in colour channels, or an INFERNO rendering), divided by
    the dtype maximum. NPY: a float array (H×W, 1×H×W or H×W×1), min-max normalised unless already in [0, 1].
    """
    if not path.is_file():
        raise DataError(f"{path}: depth map not found; {DEPTH_HINT}")
    if path.suffix.lower() == ".npy":
        return _read_depth_npy(path)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.dtype not in (np.uint8, np.uint16) or raw.ndim not in (2, 3):
        raise DataError(f"{path}: unreadable depth map (expected an 8- or 16-bit PNG); replace the file")
    if raw.ndim == 3:
        raw = raw[..., 0] if raw.shape[2] == 1 else _depth_from_colour(raw[..., :3], path)
    return raw.astype(np.float32) / float(np.iinfo(raw.dtype).max)


def _read_depth_npy(path: Path) -> np.ndarray:
    try:
        depth = np.load(path, allow_pickle=False)
    except Exception as err:  # ValueError, OSError, EOFError for corrupt or pickled files
        raise DataError(f"{path}: unreadable .npy depth map ({err}); replace the file") from None
    depth = np.squeeze(depth) if depth.ndim == 3 and 1 in (depth.shape[0], depth.shape[-1]) else depth
    if depth.ndim != 2 or depth.dtype.kind not in "fiu":
        raise DataError(f"{path}: depth array has shape {depth.shape} and dtype {depth.dtype}; expected numeric H×W")
    depth = depth.astype(np.float32)
    if not np.isfinite(depth).all():
        raise DataError(f"{path}: depth map contains NaN or infinite values; replace the file")
    lo, hi = float(depth.min()), float(depth.max())
    if lo >= 0.0 and hi <= 1.0:
        return depth
    return (depth - lo) / (hi - lo) if hi > lo else np.zeros_like(depth)


def write_palette_png(path: Path, mask: np.ndarray, palette: np.ndarray = VOC_PALETTE) -> None:
    """Write a uint8 H×W class-id mask as a palette PNG (index values preserved; 255 = ignore)."""
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise ValueError(f"mask must be uint8 H×W, got {mask.dtype} {mask.shape}")
    im = Image.fromarray(mask)  # mode "L"; putpalette turns it into "P" without touching the indices
    im.putpalette(np.asarray(palette, np.uint8).reshape(-1).tolist())
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, format="PNG", optimize=False)  # explicit format: atomic writers use a .tmp name


def find_file(folder: Path, stems: Sequence[str], exts: Sequence[str]) -> Path | None:
    """The first existing ``folder/<stem><ext>``, trying stems in order, then extensions in order."""
    for stem in stems:
        for ext in exts:
            candidate = folder / f"{stem}{ext}"
            if candidate.is_file():
                return candidate
    return None
