"""Datasets given as explicit per-sample file paths: image, optional label PNG (read through a label table), optional
paired day image and optional night→day alignment (from a ``darkseg align`` cache).

The published driving datasets (Cityscapes, Dark Zurich, ACDC, ...) differ only in how their file names are laid
out; each reader turns its layout into a list of :class:`Entry` and hands it to :class:`ListedDataset`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from darkseg.align.cache import AlignmentCache
from darkseg.data.base import SegmentationDataset, Transform, check_same_size, labels_from_mask
from darkseg.data.io import read_image, read_mask
from darkseg.errors import DataError


@dataclass(frozen=True)
class Entry:
    """One sample: its id and files (``mask``/``day`` None when the split has none)."""

    id: str
    image: Path
    mask: Path | None = None
    day: Path | None = None


@dataclass(frozen=True)
class LabelTable:
    """How raw label PNG values become train ids: ``lut[raw]``; raw values with ``valid[raw]`` False are errors."""

    name: str
    lut: np.ndarray  # uint8 (256,)
    valid: np.ndarray  # bool (256,)

    @classmethod
    def identity(cls, num_classes: int, name: str = "train ids") -> LabelTable:
        """Values 0..C-1 are class ids, 255 is ignore, everything else is an error."""
        valid = np.zeros(256, bool)
        valid[:num_classes] = valid[255] = True
        return cls(name, np.where(valid, np.arange(256), 255).astype(np.uint8), valid)

    def describe(self) -> str:
        values = np.flatnonzero(self.valid)
        runs, start = [], values[0]
        for a, b in zip(values, [*values[1:], -1]):
            if b != a + 1:
                runs.append(f"{start}..{a}" if a != start else str(a))
                start = b
        return ", ".join(runs)

    def apply(self, raw: np.ndarray, path: Path) -> np.ndarray:
        """Train-id mask of a raw label array; a DataError naming ``path`` if a value is outside the table."""
        counts = np.bincount(raw.reshape(-1), minlength=256)
        bad = np.flatnonzero((counts > 0) & ~self.valid).tolist()
        if bad:
            shown = ", ".join(str(v) for v in bad[:5])
            raise DataError(f"{path}: label values {shown} are not {self.name} ({self.describe()}); "
                            "is this the right label file (labelIds vs labelTrainIds)?")
        return self.lut[raw]


class ListedDataset(SegmentationDataset):
    """Samples from a list of :class:`Entry`; views ``image``, ``mask``, ``labels``, ``day``, ``flow``.

    ``flow`` (float32 H×W×2, night pixel (x, y) shows day pixel (x + u, y + v); NaN = no correspondence) comes from
    an alignment cache written by ``darkseg align``; pairs whose alignment failed are excluded (logged with the
    count and the report file), never used, or with ``keep_unaligned`` kept with an all-NaN flow (no
    correspondence: what evaluation with day-night pairs needs, which must score every image).
    """

    def __init__(
        self,
        name: str,
        entries: Sequence[Entry],
        class_names: Sequence[str],
        views: Sequence[str],
        transform: Transform | None = None,
        table: LabelTable | None = None,
        align_dir: Path | None = None,
        align_flow: str = "fine",
        tags: dict[str, np.ndarray] | None = None,
        keep_unaligned: bool = False,
    ) -> None:
        entries = list(entries)
        if not entries:
            raise DataError(f"{name}: no images found; check data.root and the split")
        self.name = name
        self.table = table or LabelTable.identity(len(class_names))
        available = {"image"}
        if all(e.mask is not None for e in entries):
            available |= {"mask", "labels"}
        if tags is not None:
            available.add("labels")
        self.tags = tags
        if all(e.day is not None for e in entries):
            available |= {"day"}
            if align_dir is not None:
                available.add("flow")
        missing = [v for v in views if v not in available]
        if missing:
            raise DataError(f"{name}: view(s) {', '.join(missing)} not available; this split has only "
                            f"{', '.join(sorted(available))}")
        self.alignment = AlignmentCache(Path(align_dir)) if "flow" in views else None  # type: ignore[arg-type]
        self.unaligned: set[str] = set()
        if self.alignment is not None:
            self.unaligned = self.alignment.failed_ids(entries) if keep_unaligned else set()
            entries = self.alignment.usable(entries, name, keep_failed=keep_unaligned)
        self.entries = entries
        self.available = tuple(v for v in ("image", "mask", "labels", "day", "flow") if v in available)
        self.align_flow = align_flow
        super().__init__([e.id for e in entries], class_names, views, transform)

    def load(self, index: int) -> dict:
        entry = self.entries[index]
        sample: dict = {"id": entry.id}
        image = read_image(entry.image)
        if "image" in self.views:
            sample["image"] = image
        if "day" in self.views:
            day = read_image(entry.day)  # type: ignore[arg-type]
            check_same_size(day.shape, image.shape[:2], entry.day, entry.image)  # type: ignore[arg-type]
            sample["day"] = day
        if "mask" in self.views or ("labels" in self.views and self.tags is None):
            assert entry.mask is not None
            mask = self.read_label(entry.mask)
            check_same_size(mask.shape, image.shape[:2], entry.mask, entry.image)
            if "mask" in self.views:
                sample["mask"] = mask
            if "labels" in self.views and self.tags is None:
                sample["labels"] = labels_from_mask(mask, self.num_classes)
        if "labels" in self.views and self.tags is not None:
            if entry.id not in self.tags:
                raise DataError(f"{self.name}: no image tags for {entry.id!r}; add a row 'id,class,...' to the tags")
            sample["labels"] = self.tags[entry.id]
        if "flow" in self.views:
            assert self.alignment is not None
            sample["flow"] = np.full((*image.shape[:2], 2), np.nan, np.float32) if entry.id in self.unaligned \
                else self.alignment.flow(entry.id, self.align_flow, image.shape[:2])
        return sample

    def read_label(self, path: Path) -> np.ndarray:
        """The train-id mask of a label file (through the label table)."""
        return self.table.apply(read_mask(path), path)
