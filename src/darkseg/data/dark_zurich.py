"""Dark Zurich reader (Sakaridis et al.): night images, their GPS-matched day images, val ground truth.

Layout: ROOT holds the extracted archives merged (``rgb_anon/``, ``gt/``), or the three archive folders
``Dark_Zurich_{train,val,test}_anon/`` each holding its own ``rgb_anon/`` (and ``gt/``)::

    rgb_anon/train/{night,day}/<seq>/<frame>_rgb_anon.png        pairs listed in zurich_dn_pair_train.csv
    rgb_anon/val/night/<seq>/<frame>_rgb_anon.png                 50 images
    rgb_anon/val_ref/day/<seq>_ref/<frame>_ref_rgb_anon.png       their day references
    gt/val/night/<seq>/<frame>_gt_labelTrainIds.png              (or _gt_labelIds.png)
    rgb_anon/test/night/<seq>/<frame>_rgb_anon.png                151 images, ground truth withheld
    rgb_anon/test_ref/day/<seq>_ref/<frame>_ref_...png            their day references

``zurich_dn_pair_train.csv`` (DANNet/Refign; lines ``train/night/<seq>/<frame>,train/day/<seq>/<frame>``) is looked
for in ROOT and in ``Dark_Zurich_train_anon/``. Ids are the night frame names (``GOPR0356_frame_000321``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from darkseg.data.base import Transform
from darkseg.data.cityscapes import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE, split_dir, table_for
from darkseg.data.io import write_palette_png
from darkseg.data.listed import Entry, ListedDataset
from darkseg.errors import DataError

PAIR_LIST = "zurich_dn_pair_train.csv"
_SUFFIX = "_rgb_anon.png"


def _base(root: Path, split: str) -> Path:
    """The folder holding ``rgb_anon`` for ``split``: ROOT, or ROOT/Dark_Zurich_<split>_anon."""
    archive = root / f"Dark_Zurich_{split}_anon"
    return archive if (archive / "rgb_anon").is_dir() else root


def _pairs(root: Path) -> list[Entry]:
    base = _base(root, "train")
    lists = [p for p in (root / PAIR_LIST, base / PAIR_LIST) if p.is_file()]
    if not lists:
        raise DataError(f"{root / PAIR_LIST}: Dark Zurich pair list not found; copy it from DANNet or Refign "
                        "(2416 lines 'train/night/...,train/day/...')")
    entries = []
    for number, line in enumerate(lists[0].read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 2 or not all(parts):
            raise DataError(f"{lists[0]}:{number}: expected 'night_path,day_path', got {line!r}")
        night, day = (base / "rgb_anon" / f"{p}{_SUFFIX}" for p in parts)
        entries.append(Entry(Path(parts[0]).name, night, None, day))
    return entries


def _ref(base: Path, split: str, night: Path) -> Path:
    """The day reference of a val/test night image (val: ``<frame>_ref_rgb_anon.png``; test: by frame prefix)."""
    folder = base / "rgb_anon" / f"{split}_ref" / "day" / f"{night.parent.name}_ref"
    frame = night.name.removesuffix(_SUFFIX)
    exact = folder / f"{frame}_ref{_SUFFIX}"
    if exact.is_file() or not folder.is_dir():
        return exact
    matches = sorted(folder.glob(f"{frame}_*"))
    return matches[0] if matches else exact


def dark_zurich_entries(root: Path, split: str) -> list[Entry]:
    if split == "train":
        return _pairs(root)
    if split not in ("val", "test"):
        raise DataError(f"dark_zurich: unknown split {split!r}; use train, val or test")
    base = _base(root, split)
    nights = sorted(split_dir(base, "rgb_anon", split, "night").glob(f"*/*{_SUFFIX}"))
    entries = []
    for night in nights:
        frame = night.name.removesuffix(_SUFFIX)
        mask = None
        if split == "val":
            gt = base / "gt" / split / "night" / night.parent.name
            trainids = gt / f"{frame}_gt_labelTrainIds.png"
            mask = trainids if trainids.is_file() else gt / f"{frame}_gt_labelIds.png"
        entries.append(Entry(frame, night, mask, _ref(base, split, night)))
    return entries


def dark_zurich(
    root: str | Path, split: str, views: Sequence[str], transform: Transform | None = None,
    align_dir: Path | None = None, align_flow: str = "fine", keep_unaligned: bool = False,
) -> ListedDataset:
    """Dark Zurich ``train`` (night + paired day), ``val`` (labelled, with day refs) or ``test`` (no labels)."""
    entries = dark_zurich_entries(Path(root), split)
    table = table_for(entries[0].mask) if entries and entries[0].mask else None
    return ListedDataset(f"dark_zurich {split}", entries, CITYSCAPES_CLASSES, views, transform, table,
                         align_dir, align_flow, keep_unaligned=keep_unaligned)


def write_submission(out: Path, image_name: str, labels: np.ndarray, confidence: np.ndarray) -> None:
    """One prediction in the layout of the Dark Zurich evaluation server (DANNet issue #17, CIConv's writer).

    ``labelTrainIds/`` and ``labelTrainIds_invalid/`` (a copy: no invalid-region prediction) hold grey uint8 train-id
    PNGs named like the input image (``<frame>_rgb_anon.png``); ``confidence/`` a uint16 PNG of the winning
    probability × 65535; ``color/`` a palette PNG for viewing (not uploaded). Zip the first three folders.
    """
    for sub in ("labelTrainIds", "labelTrainIds_invalid", "confidence"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for sub in ("labelTrainIds", "labelTrainIds_invalid"):
        if not cv2.imwrite(str(out / sub / image_name), labels.astype(np.uint8)):
            raise DataError(f"cannot write {out / sub / image_name}; check the folder is writable")
    conf = np.round(np.clip(confidence, 0, 1) * 65535).astype(np.uint16)
    cv2.imwrite(str(out / "confidence" / image_name), conf)
    write_palette_png(out / "color" / image_name, labels.astype(np.uint8), CITYSCAPES_PALETTE)
