"""LIS reader (Chen et al., IJCV 2023): paired dark/normal images, COCO instance JSON rasterised to semantic masks
(``coco_json.rasterise``: crowd -> 255, smaller instances on top)."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from darkseg.data.base import SegmentationDataset, Transform, check_same_size, labels_from_mask
from darkseg.data.coco_json import RULE_VERSION, Instance, load_json, rasterise
from darkseg.data.io import DEPTH_HINT, find_file, read_image, read_mask, write_palette_png
from darkseg.errors import ConfigError, DataError

LIS_CLASSES: tuple[str, ...] = (
    "background", "bicycle", "car", "motorbike", "bus", "bottle", "chair", "diningtable", "tvmonitor",
)  # fmt: skip
# COCO / LIS / VOC spellings (lower case, letters only) -> darkseg LIS id.
LIS_CATEGORY_IDS: dict[str, int] = {
    "bicycle": 1, "car": 2, "motorcycle": 3, "motorbike": 3, "bus": 4, "bottle": 5, "chair": 6,
    "diningtable": 7, "tv": 8, "tvmonitor": 8,
}  # fmt: skip


def _parse_number(file_name: str, path: Path) -> int:
    stem = Path(file_name.replace("\\", "/")).stem
    if not stem.isdigit():
        raise DataError(f"{path}: image file_name {file_name!r} is not numbered like '1950.png'; fix the JSON")
    return int(stem)


def read_annotations(path: Path) -> dict[str, tuple[int, int, list[Instance]]]:
    """Map dark id -> (height, width, instances) from a COCO-style LIS annotation file."""
    coco = load_json(path, "LIS annotation file not found; check data.root and the split")
    try:
        return _records(coco, path)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise DataError(f"{path}: not a COCO-style annotation file ({type(err).__name__}: {err}); replace it") from None


def _records(coco: dict, path: Path) -> dict[str, tuple[int, int, list[Instance]]]:
    class_of = {}
    for category in coco["categories"]:
        key = re.sub(r"[^a-z]", "", str(category["name"]).lower())
        if key not in LIS_CATEGORY_IDS:
            raise DataError(f"{path}: category {category['name']!r} is not one of the 8 LIS classes; remove it")
        class_of[category["id"]] = LIS_CATEGORY_IDS[key]
    if not coco["images"]:
        raise DataError(f"{path}: no images listed; check the annotation file")
    records: dict[str, tuple[int, int, list[Instance]]] = {}
    by_image: dict[Any, str] = {}
    for image in coco["images"]:
        number = _parse_number(str(image["file_name"]), path)
        sid = str(number if number % 2 == 0 else number + 1)  # dark N+1 pairs with normal N
        if sid in records:
            raise DataError(f"{path}: image {image['file_name']!r} is listed twice; fix the JSON")
        records[sid] = (int(image["height"]), int(image["width"]), [])
        by_image[image["id"]] = sid
    for ann in coco.get("annotations", []):
        if ann["image_id"] not in by_image or ann["category_id"] not in class_of:
            raise DataError(f"{path}: annotation {ann.get('id')} refers to an unknown image or category")
        instances = records[by_image[ann["image_id"]]][2]
        instances.append((class_of[ann["category_id"]], ann["segmentation"], bool(ann.get("iscrowd", 0))))
    return records


class LISDataset(SegmentationDataset):
    """LIS in its published layout; sample ids are the dark image numbers (N+1), paired with normal image N.

    ``root/RGB-dark/JPEGImages/<N+1>.JPG`` (view ``dark``), ``root/RGB-normal/JPEGImages/<N>.png`` (view ``image``),
    ``root/annotations/lis_coco_JPG_<split>+1.json`` (view ``mask``/``labels``), ``depth_dir/<N+1>_depth.png``.
    Rasterised masks are cached as PNGs under ``cache_dir`` when given (never inside ``root`` unless asked).
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        views: Sequence[str],
        transform: Transform | None = None,
        annotation: str | Path | None = None,
        dark_dir: str = "RGB-dark/JPEGImages",
        normal_dir: str = "RGB-normal/JPEGImages",
        depth_dir: str | Path | None = None,
        cache_dir: str | Path | None = None,
        dark_exts: tuple[str, ...] = (".JPG", ".jpg", ".png", ".jpeg"),
        normal_exts: tuple[str, ...] = (".png", ".jpg", ".JPG", ".jpeg"),
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: LIS root not found; check data.root")
        self.annotation = self.root / (annotation or f"annotations/lis_coco_JPG_{split}+1.json")
        self.records = read_annotations(self.annotation)
        super().__init__(sorted(self.records, key=int), LIS_CLASSES, views, transform)
        self.folders = {"dark": self.root / dark_dir, "image": self.root / normal_dir}
        self.exts = {"dark": dark_exts, "image": normal_exts}
        if "depth" in self.views and depth_dir is None:
            raise ConfigError("data.depth_dir: the LIS 'depth' view needs a depth folder")
        self.depth_dir = self.root / depth_dir if depth_dir is not None else None
        for view, folder in [*self.folders.items(), ("depth", self.depth_dir)]:
            if view in self.views and not (folder and folder.is_dir()):
                hint = f"; {DEPTH_HINT}" if view == "depth" else ""
                raise DataError(f"{folder}: folder for the {view!r} view not found{hint}")
        self.cache: Path | None = None
        if cache_dir is not None:
            stat = self.annotation.stat()
            key = f"{self.annotation.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{RULE_VERSION}"
            self.cache = Path(cache_dir) / f"lis-{split}-{hashlib.sha1(key.encode()).hexdigest()[:12]}"

    def load(self, index: int) -> dict:
        sid = self.ids[index]
        height, width, _ = self.records[sid]
        sample: dict = {"id": sid}
        ref = ((height, width), self.annotation)
        for view, stem in (("dark", sid), ("image", str(int(sid) - 1))):
            if view in self.views:
                path = find_file(self.folders[view], [stem], self.exts[view])
                if path is None:
                    raise DataError(
                        f"{self.folders[view] / stem}{self.exts[view][0]}: file for the {view!r} view not found "
                        f"(tried {', '.join(self.exts[view])}); restore it or remove it from {self.annotation.name}"
                    )
                sample[view] = read_image(path)
                check_same_size(sample[view].shape, ref[0], path, self.annotation)
        if "mask" in self.views or "labels" in self.views:
            mask = self.mask(sid)
            if "mask" in self.views:
                sample["mask"] = mask
            if "labels" in self.views:
                sample["labels"] = labels_from_mask(mask, self.num_classes)
        if "depth" in self.views:
            assert self.depth_dir is not None
            sample["depth"] = self.load_depth(self.find_depth(self.depth_dir, sid), ref)
        return sample

    def mask(self, sid: str) -> np.ndarray:
        """The rasterised semantic mask of ``sid``, from the disk cache when there is one."""
        cached = self.cache / f"{sid}.png" if self.cache is not None else None
        if cached is not None and cached.is_file():
            return read_mask(cached)
        height, width, instances = self.records[sid]
        mask = rasterise(height, width, instances, f"{self.annotation} (image {sid})")
        if cached is not None:
            tmp = cached.with_name(f".{sid}.{os.getpid()}.png")
            write_palette_png(tmp, mask)
            os.replace(tmp, cached)
        return mask
