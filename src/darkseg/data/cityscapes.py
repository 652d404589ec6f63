"""Cityscapes (gtFine) reader, and the 19 Cityscapes train-id classes, palette and label-id table shared by every
night dataset (Dark Zurich, ACDC, Nighttime Driving, BDD100K-night, NightCity).

Layout (as published)::

    ROOT/leftImg8bit/{train,val,test}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    ROOT/gtFine/{train,val,test}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png

Label ids map to train ids as in night-uda.md §4 (DANNet, cityscapesScripts); every other id is 255 (ignore).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from darkseg.data.base import Transform
from darkseg.data.listed import Entry, LabelTable, ListedDataset
from darkseg.errors import DataError

CITYSCAPES_CLASSES: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
    "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
)  # fmt: skip
NUM_STATIC = 11
"""Train ids 0..10 are static classes (road .. sky), 11..18 dynamic (DANNet/DANIA, night-uda.md §2.5)."""

CITYSCAPES_PALETTE: np.ndarray = np.zeros((256, 3), np.uint8)
CITYSCAPES_PALETTE[:19] = [
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153), (153, 153, 153),
    (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60), (255, 0, 0),
    (0, 0, 142), (0, 0, 70), (0, 60, 100), (0, 80, 100), (0, 0, 230), (119, 11, 32),
]  # fmt: skip
CITYSCAPES_PALETTE.setflags(write=False)

LABEL_ID_TO_TRAIN_ID: dict[int, int] = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12, 26: 13, 27: 14,
    28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip


def _label_id_table() -> LabelTable:
    """Cityscapes label ids 0..33 (and 255, the uint8 form of the license plate's -1) to train ids."""
    lut = np.full(256, 255, np.uint8)
    for label_id, train_id in LABEL_ID_TO_TRAIN_ID.items():
        lut[label_id] = train_id
    valid = np.zeros(256, bool)
    valid[:34] = valid[255] = True
    return LabelTable("Cityscapes label ids", lut, valid)


LABEL_IDS = _label_id_table()
TRAIN_IDS = LabelTable.identity(len(CITYSCAPES_CLASSES), "Cityscapes train ids")


def table_for(path: Path) -> LabelTable:
    """The table of a label file by its published suffix: ``*labelTrainIds.png``/``*_train_id.png`` or label ids."""
    name = path.name
    return TRAIN_IDS if "TrainIds" in name or name.endswith("_train_id.png") else LABEL_IDS


def split_dir(root: Path, *parts: str) -> Path:
    """``root/parts`` as an existing folder, or a DataError naming it."""
    folder = root.joinpath(*parts)
    if not folder.is_dir():
        raise DataError(f"{folder}: folder not found; check data.root (the published layout is expected)")
    return folder


def cityscapes_entries(root: Path, split: str) -> list[Entry]:
    """Every ``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` with its ``gtFine`` label-id file."""
    images = sorted(split_dir(root, "leftImg8bit", split).glob("*/*_leftImg8bit.png"))
    gt = root / "gtFine" / split
    entries = []
    for path in images:
        stem = path.name.removesuffix("_leftImg8bit.png")
        entries.append(Entry(stem, path, gt / path.parent.name / f"{stem}_gtFine_labelIds.png"))
    return entries


def cityscapes(root: str | Path, split: str, views: Sequence[str], transform: Transform | None = None) -> ListedDataset:
    """The Cityscapes ``split`` (train/val/test) with 19 train-id classes."""
    return ListedDataset("cityscapes", cityscapes_entries(Path(root), split), CITYSCAPES_CLASSES, views, transform,
                         LABEL_IDS)
