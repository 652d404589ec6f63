"""Readers of the night test and training sets labelled with the 19 Cityscapes classes (published layouts).

- ACDC night: ``rgb_anon/night/{train,val,test}/<seq>/<frame>_rgb_anon.png``, day references
  ``rgb_anon/night/<split>_ref/<seq>/<frame>_rgb_ref_anon.png``, labels
  ``gt/night/{train,val}/<seq>/<frame>_gt_labelTrainIds.png`` (test: ground truth withheld).
- Nighttime Driving: 50 images ``leftImg8bit/test/night/<name>_leftImg8bit.png`` with coarse labels
  ``gtCoarse_daytime_trainvaltest/test/night/<name>_gtCoarse_labelTrainIds.png`` (or ``_labelIds``).
- BDD100K-night: the 87 night images of the 10k segmentation split listed in ``lists/bdd100k_night.txt`` (MGCDA),
  ``images/10k/{train,val}/<id>.jpg`` with ``labels/sem_seg/masks/{train,val}/<id>.png`` (train ids), or the older
  ``seg/images/...``/``seg/labels/.../<id>_train_id.png``.
- NightCity: ``images/{train,val}/<name>.png`` with ``label/{train,val}/<name>_labelIds.png`` (label ids).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from darkseg.data.base import Transform
from darkseg.data.cityscapes import CITYSCAPES_CLASSES, LABEL_IDS, TRAIN_IDS, split_dir, table_for
from darkseg.data.listed import Entry, ListedDataset
from darkseg.errors import DataError

BDD_NIGHT_LIST = Path(__file__).with_name("lists") / "bdd100k_night.txt"


def _check_split(name: str, split: str, allowed: tuple[str, ...]) -> None:
    if split not in allowed:
        raise DataError(f"{name}: unknown split {split!r}; use {' or '.join(allowed)}")


def acdc_night_entries(root: Path, split: str) -> list[Entry]:
    _check_split("acdc_night", split, ("train", "val", "test"))
    images = sorted(split_dir(root, "rgb_anon", "night", split).glob("*/*_rgb_anon.png"))
    entries = []
    for path in images:
        frame, seq = path.name.removesuffix("_rgb_anon.png"), path.parent.name
        mask = None if split == "test" else root / "gt" / "night" / split / seq / f"{frame}_gt_labelTrainIds.png"
        day = root / "rgb_anon" / "night" / f"{split}_ref" / seq / f"{frame}_rgb_ref_anon.png"
        entries.append(Entry(frame, path, mask, day))
    return entries


def nighttime_driving_entries(root: Path, split: str) -> list[Entry]:
    _check_split("nighttime_driving", split, ("test",))
    images = sorted(split_dir(root, "leftImg8bit", "test", "night").glob("*_leftImg8bit.png"))
    gt = root / "gtCoarse_daytime_trainvaltest" / "test" / "night"
    entries = []
    for path in images:
        stem = path.name.removesuffix("_leftImg8bit.png")
        mask = gt / f"{stem}_gtCoarse_labelTrainIds.png"
        entries.append(Entry(stem, path, mask if mask.is_file() else gt / f"{stem}_gtCoarse_labelIds.png"))
    return entries


def bdd100k_night_entries(root: Path, split: str) -> list[Entry]:
    _check_split("bdd100k_night", split, ("test",))
    old = (root / "seg" / "images").is_dir() and not (root / "images" / "10k").is_dir()
    split_dir(root, *(("seg", "images") if old else ("images", "10k")))
    entries = []
    for line in BDD_NIGHT_LIST.read_text().split():
        part, image_id = line.split("/")
        if old:
            image = root / "seg" / "images" / part / f"{image_id}.jpg"
            mask = root / "seg" / "labels" / part / f"{image_id}_train_id.png"
        else:
            image = root / "images" / "10k" / part / f"{image_id}.jpg"
            mask = root / "labels" / "sem_seg" / "masks" / part / f"{image_id}.png"
        entries.append(Entry(image_id, image, mask))
    return entries


def nightcity_entries(root: Path, split: str) -> list[Entry]:
    _check_split("nightcity", split, ("train", "val"))
    images = sorted(split_dir(root, "images", split).glob("*.png"))
    return [Entry(p.stem, p, root / "label" / split / f"{p.stem}_labelIds.png") for p in images]


def _build(name: str, entries: list[Entry], views: Sequence[str], transform: Transform | None,
           align_dir: Path | None = None, align_flow: str = "fine", keep_unaligned: bool = False) -> ListedDataset:
    table = table_for(entries[0].mask) if entries and entries[0].mask else None
    return ListedDataset(name, entries, CITYSCAPES_CLASSES, views, transform, table, align_dir, align_flow,
                         keep_unaligned=keep_unaligned)


def acdc_night(root: str | Path, split: str, views: Sequence[str], transform: Transform | None = None,
               align_dir: Path | None = None, align_flow: str = "fine", keep_unaligned: bool = False) -> ListedDataset:
    """ACDC night ``train``/``val`` (labelled) or ``test``, each image with its day reference."""
    return _build(f"acdc_night {split}", acdc_night_entries(Path(root), split), views, transform, align_dir,
                  align_flow, keep_unaligned)


def nighttime_driving(root: str | Path, split: str, views: Sequence[str],
                      transform: Transform | None = None) -> ListedDataset:
    """Nighttime Driving ``test``: 50 coarsely labelled night images."""
    return _build("nighttime_driving", nighttime_driving_entries(Path(root), split), views, transform)


def bdd100k_night(root: str | Path, split: str, views: Sequence[str],
                  transform: Transform | None = None) -> ListedDataset:
    """BDD100K-night ``test``: the 87 labelled night images of BDD100K's 10k segmentation split (train ids)."""
    entries = bdd100k_night_entries(Path(root), split)
    return ListedDataset("bdd100k_night", entries, CITYSCAPES_CLASSES, views, transform, TRAIN_IDS)


def nightcity(root: str | Path, split: str, views: Sequence[str], transform: Transform | None = None) -> ListedDataset:
    """NightCity ``train``/``val`` with Cityscapes label ids."""
    entries = nightcity_entries(Path(root), split)
    return ListedDataset(f"nightcity {split}", entries, CITYSCAPES_CLASSES, views, transform, LABEL_IDS)
