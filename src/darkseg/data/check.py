"""``darkseg data check``: read every file of a dataset split once and count the labelled pixels of each class."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from darkseg.data.base import SegmentationDataset
from darkseg.data.config import DataConfig
from darkseg.data.listed import ListedDataset
from darkseg.data.registry import DATASETS, build_dataset
from darkseg.errors import DataError


def config_for_root(name: str, root: Path) -> DataConfig:
    """A data config reading ``root`` as dataset ``name``; a generated benchmark keeps the settings it was made with
    (and is never generated here)."""
    DATASETS.get(name, "dataset")
    cfg = DataConfig(dataset=name, root=str(root))
    if name in ("scenes", "scenes_daynight"):
        from darkseg.data import scenes, scenes_daynight

        reader = scenes.read_meta if name == "scenes" else scenes_daynight.read_meta
        meta = reader(root)
        if meta is None:
            raise DataError(f"{root}: not a complete {name} cache; generate it with 'darkseg data {name} {root}'")
        if name == "scenes":
            cfg.scenes = scenes.ScenesConfig(**meta["config"])
        else:
            cfg.scenes_daynight = scenes_daynight.DayNightConfig(**meta["config"])
    return cfg


def _views(cfg: DataConfig, split: str) -> tuple[str, ...]:
    """Every view the split has, except derived ones (flows; image tags unless read from a tags file)."""
    if cfg.dataset in ("voc", "scenes", "lis", "coco", "cocostuff10k_voc"):
        extra = ("dark",) if cfg.dataset == "lis" or (Path(cfg.root) / cfg.dark_dir).is_dir() else ()
        return ("image", *extra, "mask")
    probe = build_dataset(cfg, split, ("image",))
    assert isinstance(probe, ListedDataset)
    derived = ("flow",) if probe.tags is not None else ("labels", "flow")
    return tuple(v for v in probe.available if v not in derived)


def check_split(cfg: DataConfig, split: str) -> dict[str, Any]:
    """Load every sample of ``split`` (raising the first bad file as a DataError); image count and class pixels."""
    views = _views(cfg, split)
    dataset: SegmentationDataset = build_dataset(cfg, split, views)
    pixels = np.zeros(256, np.int64)
    for index in range(len(dataset)):
        sample = dataset.load(index)
        if "mask" in sample:
            pixels += np.bincount(sample["mask"].reshape(-1), minlength=256)
    names = dataset.class_names
    result: dict[str, Any] = {"dataset": cfg.dataset, "root": cfg.root, "split": split, "images": len(dataset),
                              "views": list(views)}
    if "mask" in views:
        result["class_pixels"] = {n: int(c) for n, c in zip(names, pixels[: len(names)])}
        result["ignored_pixels"] = int(pixels[255])
    return result
