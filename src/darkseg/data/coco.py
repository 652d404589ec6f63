"""MS COCO 2014 (80 classes + background) converted once into a VOC-layout tree that ``VOCDataset`` reads.

``darkseg data coco ROOT --out OUT`` reads ``ROOT/annotations/instances_{train,val}2014.json`` and the images
``ROOT/{train,val}2014/COCO_<split>2014_<id>.jpg`` and writes ``OUT/JPEGImages/<stem>.jpg`` (relative symlinks to the
originals, never copies), ``OUT/SegmentationClassAug/<stem>.png`` (palette masks by ``coco_json.rasterise``: crowd
255, smaller instances on top; the folder is named as VOC's training masks, the default ``data.mask_dir``),
``OUT/ImageSets/Segmentation/{train,val}.txt`` and ``OUT/darkseg_dataset.json``. Class ids 1..80 follow the COCO
category ids; image-level labels come from the masks, as for VOC. Dark images (``darkseg synth OUT/JPEGImages
OUT/dark``), depth maps and pseudo masks then work as for VOC. The tree helpers here (start, link, write, finish,
check) are shared with the COCO-Stuff converter (``cocostuff.py``).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from darkseg.data.coco_json import RULE_VERSION, Instance, load_json, rasterise
from darkseg.data.io import write_palette_png
from darkseg.errors import DataError
from darkseg.fileio import atomic_write, atomic_write_bytes

COCO_THINGS: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow", "elephant",
    "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard",
    "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange", "broccoli",
    "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant", "bed", "dining table", "toilet",
    "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush",
)  # fmt: skip
# COCO category id of each of the 80 classes (1..90 without the ten ids COCO never used).
COCO_CATEGORY_IDS: tuple[int, ...] = tuple(i for i in range(1, 91) if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83))
COCO_CLASSES: tuple[str, ...] = ("background", *COCO_THINGS)
SPLITS = ("train", "val")

META = "darkseg_dataset.json"
IMAGE_DIR, MASK_DIR, LIST_DIR = "JPEGImages", "SegmentationClassAug", "ImageSets/Segmentation"


def normalise_name(name: object) -> str:
    """Lower-case letters only: 'dining table', 'DiningTable' and 'diningtable' compare equal."""
    return re.sub(r"[^a-z]", "", str(name).lower())


# ---- converted-tree helpers (shared with cocostuff.py) --------------------------------------------------------


def read_meta(out: Path) -> dict | None:
    path = Path(out) / META
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text())
    except ValueError:
        raise DataError(f"{path}: not a JSON file; remove the folder and convert again") from None
    return meta if isinstance(meta, dict) else None


def start_tree(out: Path, inputs: Sequence[Path], settings: dict[str, Any]) -> None:
    """Refuse an ``out`` that is, lies in or contains an input, or holds something else than an earlier conversion
    with the same settings (which is resumed); then record the settings, marked incomplete."""
    target = out.resolve()
    for src in inputs:
        s = src.resolve()
        if target == s or s in target.parents or target in s.parents:
            raise DataError(f"--out {out}: is, lies in or contains the input {src}; choose a new folder (inputs are "
                            "never written)")
    meta = read_meta(out)
    if meta is None and out.is_dir() and any(out.iterdir()):
        raise DataError(f"{out}: folder is not empty and holds no {META}; choose a new or empty --out")
    if meta is not None and meta.get("settings") != settings:
        old = meta.get("settings") or {}
        diff = ", ".join(f"{k}={old.get(k)!r} (now {v!r})" for k, v in settings.items() if old.get(k) != v)
        raise DataError(f"{out}: converted with other settings ({diff}); choose another --out or delete it")
    out.mkdir(parents=True, exist_ok=True)
    meta = {**(meta or {}), "settings": settings, "complete": False}
    atomic_write_bytes(out / META, json.dumps(meta, indent=1).encode())


def link_image(src: Path, link: Path) -> None:
    """A relative symlink ``link`` -> ``src``, created atomically; an existing one is kept if it points there."""
    link.parent.mkdir(parents=True, exist_ok=True)
    target = os.path.relpath(src.resolve(), link.parent.resolve())
    if link.is_symlink():
        if os.readlink(link) == target:
            return
        raise DataError(f"{link}: points to {os.readlink(link)}, not {target}; delete it or choose another --out")
    if link.exists():
        raise DataError(f"{link}: exists and is not a link to {src}; delete it or choose another --out")
    tmp = link.with_name(f".{link.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)


def write_mask(path: Path, mask: Any) -> None:
    atomic_write(path, lambda tmp: write_palette_png(tmp, mask))


def finish_tree(out: Path, lists: dict[str, list[str]], counts: dict[str, int]) -> None:
    """Write the split lists, then mark the tree complete (a reader refuses an incomplete one)."""
    for split, ids in lists.items():
        atomic_write_bytes(out / LIST_DIR / f"{split}.txt", "".join(f"{i}\n" for i in ids).encode())
    meta = read_meta(out)
    assert meta is not None
    meta.update(complete=True, counts={**meta.get("counts", {}), **counts})  # a split converted alone adds its own
    atomic_write_bytes(out / META, json.dumps(meta, indent=1).encode())


def check_converted(root: Path, dataset: str, command: str) -> None:
    """Raise unless ``root`` is a complete tree written for ``dataset`` by ``command``."""
    meta = read_meta(root)
    kind = (meta or {}).get("settings", {}).get("dataset")
    if kind != dataset:
        found = f"a tree converted for {kind!r}" if kind else f"no {META}"
        raise DataError(f"{root}: data.dataset {dataset!r} reads the VOC-layout tree written by '{command}', but "
                        f"found {found}; convert the dataset or fix data.root")
    if not meta or not meta.get("complete"):
        raise DataError(f"{root}: the {dataset} conversion did not finish; rerun '{command}' (it resumes)")


def run_jobs(fn: Callable[[Any], Any], jobs: Sequence[Any], workers: int, desc: str, progress: bool) -> Iterator[Any]:
    """``fn`` over ``jobs`` (in order) in ``workers`` spawned processes (0 or 1: in this process)."""
    from tqdm import tqdm

    def bar(results: Iterable[Any]) -> Iterator[Any]:
        return iter(tqdm(results, total=len(jobs), desc=desc, disable=not progress, dynamic_ncols=True))

    if workers <= 1:
        yield from bar(map(fn, jobs))
        return
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        yield from bar(pool.imap(fn, jobs, chunksize=16))


# ---- COCO 2014 ----------------------------------------------------------------------------------------------------


def _class_ids(categories: list[dict], path: Path) -> dict[int, int]:
    """COCO category id -> darkseg id (1..80: the position of its name among the canonical 80, whose COCO id it must
    have)."""
    index = {normalise_name(n): i + 1 for i, n in enumerate(COCO_THINGS)}
    class_of: dict[int, int] = {}
    for category in categories:
        cid = index.get(normalise_name(category["name"]))
        if cid is None:
            raise DataError(f"{path}: category {category['name']!r} (id {category['id']}) is not one of the 80 COCO "
                            "classes; use the COCO 2014 instance annotations")
        if int(category["id"]) != COCO_CATEGORY_IDS[cid - 1] or int(category["id"]) in class_of:
            raise DataError(f"{path}: category {category['name']!r} has id {category['id']}, COCO's is "
                            f"{COCO_CATEGORY_IDS[cid - 1]} (or the id repeats); use the COCO 2014 instance annotations")
        class_of[int(category["id"])] = cid
    return class_of


def read_split(root: Path, split: str) -> list[tuple[str, Path, int, int, list[Instance]]]:
    """(stem, image path, height, width, instances) of each image of ``instances_<split>2014.json``, checked on disk."""
    path = root / "annotations" / f"instances_{split}2014.json"
    coco = load_json(path, f"COCO annotation file not found; ROOT must hold annotations/instances_{split}2014.json")
    try:
        class_of = _class_ids(coco["categories"], path)
        images: dict[Any, tuple[str, Path, int, int, list[Instance]]] = {}
        for image in coco["images"]:
            stem = Path(str(image["file_name"]).replace("\\", "/")).stem
            source = root / f"{split}2014" / f"{stem}.jpg"
            images[image["id"]] = (stem, source, int(image["height"]), int(image["width"]), [])
        for ann in coco.get("annotations", []):
            if ann["image_id"] not in images or ann["category_id"] not in class_of:
                raise DataError(f"{path}: annotation {ann.get('id')} refers to an unknown image or category")
            images[ann["image_id"]][4].append((class_of[ann["category_id"]], ann["segmentation"],
                                               bool(ann.get("iscrowd", 0))))
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise DataError(f"{path}: not a COCO-style annotation file ({type(err).__name__}: {err}); replace it") from None
    records = sorted(images.values())
    if len({r[0] for r in records}) != len(records):
        raise DataError(f"{path}: an image file name is listed twice; fix the JSON")
    missing = [r[1] for r in records if not r[1].is_file()]
    if missing:
        raise DataError(f"{missing[0]}: image listed in {path.name} not found ({len(missing)} of {len(records)} "
                        f"missing); unpack {split}2014/ under ROOT")
    return records


def _mask_job(job: tuple[str, int, int, list[Instance], str]) -> None:
    out, height, width, instances, source = job
    write_mask(Path(out), rasterise(height, width, instances, source))


def convert(root: Path, out: Path, splits: Sequence[str] = SPLITS, keep_empty: bool = False, workers: int = 0,
            progress: bool = True) -> dict[str, int]:
    """Write the VOC-layout tree of COCO 2014 ``splits`` to ``out`` (resumable: existing masks are kept); returns the
    number of listed images per split and of images left out for having no annotation."""
    root, out = Path(root), Path(out)
    records = {split: read_split(root, split) for split in splits}  # every input checked before anything is written
    inputs = [root / "annotations", *(root / f"{s}2014" for s in splits)]
    start_tree(out, inputs, {"dataset": "coco", "source": str(root.resolve()), "keep_empty": keep_empty,
                             "rule": RULE_VERSION})
    lists: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    for split, recs in records.items():
        kept = [r for r in recs if keep_empty or r[4]]
        for stem, source, *_ in kept:
            link_image(source, out / IMAGE_DIR / f"{stem}.jpg")
        jobs = [(str(out / MASK_DIR / f"{stem}.png"), h, w, inst, f"{root / 'annotations'} (image {stem})")
                for stem, _, h, w, inst in kept if not (out / MASK_DIR / f"{stem}.png").is_file()]
        for _ in run_jobs(_mask_job, jobs, workers, f"coco {split} masks", progress):
            pass
        lists[split] = [r[0] for r in kept]
        counts[split] = len(kept)
        counts[f"{split}_without_annotations"] = len(recs) - len([r for r in recs if r[4]])
    finish_tree(out, lists, counts)
    return counts
