"""PASCAL VOC 2012 + SBD layout reader (also dark VOC, depth folders and the built-in `scenes` benchmark)."""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from darkseg.data.base import (
    SegmentationDataset,
    Transform,
    check_mask_values,
    check_same_size,
    labels_from_counts,
    read_id_list,
)
from darkseg.data.io import DEPTH_HINT, VOC_CLASSES, find_file, read_image, read_mask
from darkseg.data.lis import LIS_CLASSES
from darkseg.errors import ConfigError, DataError
from darkseg.fileio import atomic_write

# VOC id -> LIS id for the 8 shared classes (dgkd-official.md §1); every other foreground class becomes 255.
VOC8_TO_LIS: dict[int, int] = {2: 1, 7: 2, 14: 3, 6: 4, 5: 5, 9: 6, 11: 7, 20: 8}
CLASS_MAPS: dict[str, tuple[dict[int, int], tuple[str, ...], tuple[str, ...]]] = {
    "voc8_to_lis": (VOC8_TO_LIS, VOC_CLASSES, LIS_CLASSES),
}


# The benchmark's own val/test masks (object borders marked void = 255) score those splits; SBD's augmented masks
# (no void borders) are for training. A config naming the Aug folder for val/test is switched to the official one
# when the tree has it (the eval report names the folder used).
AUG_MASKS, OFFICIAL_MASKS = "SegmentationClassAug", "SegmentationClass"
OFFICIAL_SPLITS = ("val", "test")


def class_map_lut(mapping: dict[int, int], num_source: int) -> np.ndarray:
    """A 256-entry uint8 lookup: 0 -> 0, mapped ids -> their targets, other source ids -> 255, 255 -> 255."""
    lut = np.full(256, 255, np.uint8)
    lut[0] = 0
    for src, dst in mapping.items():
        if not 0 < src < num_source:
            raise ValueError(f"class map source id {src} outside 1..{num_source - 1}")
        lut[src] = dst
    return lut


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles NumPy arrays, dtypes and scalars only: a label file cannot run code when it is read."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a label file")
        return super().find_class(module, name)


def _load_pickled_npy(path: Path) -> object:
    """The object stored by ``np.save(path, obj)`` (an object array), read with :class:`_ArrayUnpickler`."""
    with open(path, "rb") as f:
        major, _ = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        _, _, dtype = read_header(f)
        if not dtype.hasobject:
            raise ValueError("not a pickled object array")
        array = _ArrayUnpickler(f).load()
    return array.item() if isinstance(array, np.ndarray) and array.shape == () else array


def read_cls_labels(path: Path, num_labels: int) -> dict[str, np.ndarray]:
    """A ``cls_labels.npy``-style dict id -> (C-1,) vector; int-encoded ids (2007000032) and strings both work."""
    if not path.is_file():
        raise DataError(
            f"{path}: image-label file not found (data.cls_labels); it is optional: unset data.cls_labels and the "
            "labels come from the masks, or write it from the masks with 'darkseg data cls-labels ROOT'"
        )
    try:
        table = _load_pickled_npy(path)
    except Exception as err:  # missing file, not a pickled dict, corrupt file, forbidden pickle content
        raise DataError(
            f"{path}: cannot read image-level labels ({err}); expected np.save of a dict id -> vector"
        ) from None
    if not isinstance(table, dict) or not table:
        raise DataError(f"{path}: expected a non-empty dict id -> {num_labels}-d label vector")
    out: dict[str, np.ndarray] = {}
    for key, value in table.items():
        vector = np.asarray(value, np.float32).reshape(-1)
        if vector.shape != (num_labels,):
            raise DataError(f"{path}: labels of {key!r} have {vector.size} entries; expected {num_labels}")
        out[label_key(key)] = (vector > 0).astype(np.float32)
    return out


def write_cls_labels(
    root: Path, splits: Sequence[str], out: Path, mask_dir: str = AUG_MASKS, overwrite: bool = False
) -> int:
    """Write the labels of ``splits`` derived from their masks to ``out`` as :func:`read_cls_labels` reads them
    (``np.save`` of a dict id -> (C-1,) float32 multi-hot vector); returns the number of ids."""
    if out.exists() and not overwrite:
        raise DataError(f"{out}: file exists; pass --overwrite to replace it or --out to write another file")
    table: dict[str, np.ndarray] = {}
    for split in splits:
        ds = VOCDataset(root, split, ("labels",), mask_dir=mask_dir)
        table.update((sid, ds.load(i)["labels"]) for i, sid in enumerate(ds.ids))

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            np.save(f, np.array(table, dtype=object), allow_pickle=True)

    atomic_write(out, write)
    return len(table)


def label_key(sample_id: object) -> str:
    """Canonical key of an id: "2007_000032" and 2007000032 both give "2007000032"."""
    return str(sample_id).replace("_", "")


class VOCDataset(SegmentationDataset):
    """Images, dark images, depth maps, palette masks and image-level labels in the VOC 2012 (+SBD) layout.

    ``root/<image_dir>/<id>.<ext>``, ``root/<dark_dir>/<id>.<ext>``, ``root/<depth_dir>/<id>_depth.png`` (or
    ``<id>.png``/``<id>.npy``), ``root/<mask_dir>/<id>.png``, ``root/<list_dir>/<split>.txt``. Labels come from the
    masks, or from ``cls_labels`` when given; a disagreement between the two is warned about once (``check_labels``
    counts them all) or raised with ``label_mismatch="error"``. ``class_map="voc8_to_lis"`` remaps the masks and
    labels to the LIS classes.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        views: Sequence[str],
        transform: Transform | None = None,
        image_dir: str = "JPEGImages",
        dark_dir: str = "dark",
        depth_dir: str = "depth",
        mask_dir: str = "SegmentationClassAug",
        list_dir: str = "ImageSets/Segmentation",
        class_names: Sequence[str] = VOC_CLASSES,
        cls_labels: Path | None = None,
        class_map: str | None = None,
        image_exts: tuple[str, ...] = (".jpg", ".png", ".jpeg", ".JPG"),
        label_mismatch: Literal["warn", "error"] = "warn",
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: dataset root not found; check data.root")
        names = tuple(class_names)
        self.lut: np.ndarray | None = None
        if class_map is not None:
            if class_map not in CLASS_MAPS:
                raise ConfigError(f"data.class_map: unknown {class_map!r}; allowed: {', '.join(CLASS_MAPS)}")
            mapping, source, names = CLASS_MAPS[class_map]
            if tuple(class_names) != source:
                raise ConfigError(f"data.class_map: {class_map!r} needs the {len(source)} source class names")
            self.lut = class_map_lut(mapping, len(source))
        super().__init__(read_id_list(self.root / list_dir / f"{split}.txt"), names, views, transform)
        self.source_classes = len(class_names)
        self.image_exts = image_exts
        self.label_mismatch = label_mismatch
        self.label_mismatches: list[str] = []
        self.cls_labels_path = Path(cls_labels) if cls_labels is not None else None
        self._cls = read_cls_labels(self.cls_labels_path, self.source_classes - 1) if self.cls_labels_path else None
        if mask_dir == AUG_MASKS and split in OFFICIAL_SPLITS and (self.root / OFFICIAL_MASKS).is_dir():
            mask_dir = OFFICIAL_MASKS
        self.folders = {"image": image_dir, "dark": dark_dir, "depth": depth_dir, "mask": mask_dir}
        needed = [v for v in self.folders if v in self.views]
        if "labels" in self.views and self._cls is None:
            needed.append("mask")
        for view in needed:
            if not (self.root / self.folders[view]).is_dir():
                hint = f"; {DEPTH_HINT}" if view == "depth" else ""
                raise DataError(f"{self.root / self.folders[view]}: folder for the {view!r} view not found{hint}")

    def folder(self, view: str) -> Path:
        return self.root / self.folders[view]

    @property
    def mask_source(self) -> str:
        """The folder the masks of this split are read from (named in every evaluation report)."""
        return str(self.folder("mask"))

    def load(self, index: int) -> dict:
        sid = self.ids[index]
        sample: dict = {"id": sid}
        ref: tuple[tuple[int, int], Path] | None = None
        for view in ("image", "dark"):
            if view in self.views:
                path = self._image_path(view, sid)
                sample[view] = read_image(path)
                ref = self._check_size(sample[view].shape, path, ref)
        derived = None
        if "mask" in self.views or ("labels" in self.views and self._cls is None):
            path = self.folder("mask") / f"{sid}.png"
            mask, derived = self._read_mask(path)
            ref = self._check_size(mask.shape, path, ref)
            if "mask" in self.views:
                sample["mask"] = mask
        if "depth" in self.views:
            path = self.find_depth(self.folder("depth"), sid)
            sample["depth"] = self.load_depth(path, ref)
        if "labels" in self.views:
            sample["labels"] = self._labels(sid, derived)
        return sample

    def _read_mask(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        """The checked (and class-mapped) mask and its derived image-level labels."""
        mask = read_mask(path)
        counts = check_mask_values(mask, self.source_classes, path)
        if self.lut is not None:
            mask = self.lut[mask]
            counts = np.bincount(self.lut, weights=counts, minlength=256)
        return mask, labels_from_counts(counts, self.num_classes)

    def check_labels(self, max_ids: int = 5) -> list[str]:
        """Compare the ``cls_labels`` file with every mask; warn (or raise) with the count and a few ids."""
        if self._cls is None:
            return []
        bad = []
        for sid in self.ids:
            derived = self._read_mask(self.folder("mask") / f"{sid}.png")[1]
            if not np.array_equal(derived, self._cls_vector(sid)):
                bad.append(sid)
        if bad:
            message = (
                f"{self.cls_labels_path}: labels of {len(bad)} of {len(self.ids)} ids differ from their masks "
                f"(e.g. {', '.join(bad[:max_ids])}); the file's labels are used"
            )
            if self.label_mismatch == "error":
                raise DataError(message + "; fix the file or the masks")
            warnings.warn(message, stacklevel=2)
        return bad

    def _image_path(self, view: str, sid: str) -> Path:
        path = find_file(self.folder(view), [sid], self.image_exts)
        if path is None:
            raise DataError(
                f"{self.folder(view) / sid}{self.image_exts[0]}: file for the {view!r} view not found "
                f"(tried {', '.join(self.image_exts)}); restore it or remove {sid!r} from the list file"
            )
        return path

    @staticmethod
    def _check_size(
        shape: tuple[int, ...], path: Path, ref: tuple[tuple[int, int], Path] | None
    ) -> tuple[tuple[int, int], Path]:
        if ref is None:
            return (shape[0], shape[1]), path
        check_same_size(shape, ref[0], path, ref[1])
        return ref

    def _cls_vector(self, sid: str) -> np.ndarray:
        assert self._cls is not None
        vector = self._cls.get(label_key(sid))
        if vector is None:
            raise DataError(f"{self.cls_labels_path}: no labels for id {sid!r}; add them or drop cls_labels")
        if self.lut is None:
            return vector
        out = np.zeros(self.num_classes - 1, np.float32)
        for src in np.flatnonzero(vector) + 1:
            if 0 < self.lut[src] < 255:
                out[self.lut[src] - 1] = 1.0
        return out

    def _labels(self, sid: str, derived: np.ndarray | None) -> np.ndarray:
        if self._cls is None:
            assert derived is not None
            return derived
        labels = self._cls_vector(sid)
        if derived is not None and not np.array_equal(labels, derived):
            self._report_mismatch(sid, labels, derived)
        return labels

    def _report_mismatch(self, sid: str, labels: np.ndarray, derived: np.ndarray) -> None:
        names = self.class_names[1:]
        detail = (
            f"file {[n for n, v in zip(names, labels) if v]} vs mask {[n for n, v in zip(names, derived) if v]}"
        )
        message = f"{self.cls_labels_path}: labels of {sid!r} differ from its mask ({detail})"
        if self.label_mismatch == "error":
            raise DataError(message + "; fix the file or the mask, or set label_mismatch='warn'")
        if not self.label_mismatches:
            warnings.warn(
                message + "; the file's labels are used (warned once; see check_labels() for the count)",
                stacklevel=3,
            )
        self.label_mismatches.append(sid)
