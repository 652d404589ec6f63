"""Dataset base class: views, (index, seed) items, and the load-time checks shared by all readers."""

from __future__ import annotations

import operator
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from torch.utils.data import Dataset

from darkseg.data.io import DEPTH_HINT, find_file, read_depth
from darkseg.errors import ConfigError, DataError

VIEWS: tuple[str, ...] = ("image", "dark", "depth", "mask", "labels", "day", "flow")
"""``day``: the paired daytime image of a night image (adaptation); ``flow``: its night→day alignment."""
DEPTH_STEMS: tuple[str, ...] = ("{id}_depth", "{id}")
DEPTH_EXTS: tuple[str, ...] = (".png", ".npy")

Sample = dict[str, Any]
Transform = Callable[[Sample, np.random.Generator], Sample]


def read_id_list(path: Path) -> list[str]:
    """Ids from a list file: one per line; the stem of the first token, so "/JPEGImages/x.jpg ..." lines work."""
    if not path.is_file():
        raise DataError(f"{path}: list file not found; check the dataset root and split name")
    ids = [Path(line.split()[0]).stem for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise DataError(f"{path}: list file is empty; add one id per line")
    return ids


def class_counts(mask: np.ndarray) -> np.ndarray:
    """Pixel count of every value 0..255 in a uint8 mask."""
    return np.bincount(mask.reshape(-1), minlength=256)


def labels_from_counts(counts: np.ndarray, num_classes: int) -> np.ndarray:
    """Multi-hot float32 (C-1,) vector of the foreground classes with a non-zero pixel count."""
    return (counts[1:num_classes] > 0).astype(np.float32)


def labels_from_mask(mask: np.ndarray, num_classes: int) -> np.ndarray:
    """Multi-hot float32 (C-1,) vector of the foreground classes present in a checked mask."""
    return labels_from_counts(class_counts(mask), num_classes)


def check_mask_values(mask: np.ndarray, num_classes: int, path: Path) -> np.ndarray:
    """Raise a DataError naming ``path`` if a value lies outside [0, C) ∪ {255}; return the value counts."""
    counts = class_counts(mask)
    bad = (np.flatnonzero(counts[num_classes:255]) + num_classes).tolist()
    if bad:
        shown = ", ".join(str(v) for v in bad[:5])
        raise DataError(f"{path}: mask values {shown} outside 0..{num_classes - 1} (255 = ignore); fix the mask")
    return counts


def check_same_size(shape: tuple[int, ...], ref: tuple[int, int], path: Path, ref_path: Path) -> None:
    """Raise a DataError if the H×W of ``shape`` differs from ``ref`` (the size of ``ref_path``)."""
    if tuple(shape[:2]) != tuple(ref):
        raise DataError(
            f"{path}: size {shape[1]}x{shape[0]} differs from {ref_path.name} ({ref[1]}x{ref[0]}); "
            "views of one sample must be pixel-aligned"
        )


def same_aspect(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Whether two H×W sizes have the same aspect ratio up to the rounding of a resize."""
    return abs(a[0] * b[1] - a[1] * b[0]) <= max(*a, *b)


class SegmentationDataset(Dataset[Sample]):
    """A list of samples, each a dict of NumPy views (see the data contract in docs/architecture.md).

    ``dataset[i]`` loads sample ``i`` and applies ``transform(sample, default_rng(i))``; ``dataset[(i, seed)]`` uses
    ``default_rng(seed)`` instead, so a sampler controls the augmentation randomness. Bad files raise ``DataError``.
    """

    def __init__(
        self,
        ids: Sequence[str],
        class_names: Sequence[str],
        views: Sequence[str],
        transform: Transform | None = None,
    ) -> None:
        unknown = [v for v in views if v not in VIEWS]
        if unknown or not views:
            raise ConfigError(f"data.views: {unknown or 'empty'} not allowed; choose from {', '.join(VIEWS)}")
        self.ids = list(ids)
        self.class_names = tuple(class_names)
        self.views = tuple(views)
        self.transform = transform
        self._warned_resize = False

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.ids)

    def load(self, index: int) -> Sample:
        """Sample ``index`` as a dict of NumPy arrays (only ``self.views`` plus ``id``)."""
        raise NotImplementedError

    def __getitem__(self, item: int | tuple[int, int | None]) -> Sample:
        index, seed = item if isinstance(item, tuple) else (item, None)
        index = operator.index(index)
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        index %= len(self)
        sample = self.load(index)
        if self.transform is None:
            return sample
        return self.transform(sample, np.random.default_rng(index if seed is None else seed))

    def find_depth(self, folder: Path, sample_id: str) -> Path:
        """The depth file of ``sample_id``: ``<id>_depth.png``, ``<id>.png``, ``<id>_depth.npy`` or ``<id>.npy``."""
        stems = [s.format(id=sample_id) for s in DEPTH_STEMS]
        path = find_file(folder, stems, DEPTH_EXTS)
        if path is None:
            raise DataError(
                f"{folder / (sample_id + '_depth.png')}: depth map not found (also tried <id>.png, <id>.npy); "
                f"{DEPTH_HINT}"
            )
        return path

    def load_depth(self, path: Path, ref: tuple[tuple[int, int], Path] | None) -> np.ndarray:
        """Read a depth map and fit it to ``ref`` = (H×W, file): resized (warned once) if only the scale differs."""
        depth = read_depth(path)
        if ref is None or depth.shape == ref[0]:
            return depth
        (h, w), ref_path = ref
        if not same_aspect(depth.shape, (h, w)):
            raise DataError(
                f"{path}: depth size {depth.shape[1]}x{depth.shape[0]} has a different aspect ratio from "
                f"{ref_path.name} ({w}x{h}); regenerate the depth map from this image"
            )
        if not self._warned_resize:
            warnings.warn(
                f"{path}: depth size {depth.shape[1]}x{depth.shape[0]} differs from {ref_path.name} ({w}x{h}); "
                "resizing depth maps to their images (warned once per dataset)",
                stacklevel=3,
            )
            self._warned_resize = True
        return cv2.resize(depth, (w, h), interpolation=cv2.INTER_LINEAR)
