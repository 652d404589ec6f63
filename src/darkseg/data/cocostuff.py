"""COCO-Stuff 10K (v1.1) reduced to the 21 PASCAL VOC classes (ASDT §4 following EDAM), as a VOC-layout tree.

``darkseg data cocostuff10k ROOT --out OUT`` reads ``ROOT/imageLists/{train,test}.txt``, ``ROOT/images/<id>.jpg`` and
``ROOT/annotations/<id>.mat`` (``S``: label map, 0 = unlabeled, 1..182 = ``names``; thing labels are the COCO
category ids) and writes, like ``coco.convert``, relative image symlinks, ``SegmentationClassAug/<id>.png`` with the
things of the 20 VOC categories at their VOC ids, every other labelled category 0 (background) and unlabeled 255,
and the lists ``train`` (the ``train.txt`` images holding at least one VOC-class pixel), ``train_all`` (all of
``train.txt``) and ``test`` (``test.txt``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from darkseg.data.base import read_id_list
from darkseg.data.coco import (
    COCO_CATEGORY_IDS,
    COCO_THINGS,
    IMAGE_DIR,
    MASK_DIR,
    finish_tree,
    link_image,
    normalise_name,
    run_jobs,
    start_tree,
    write_mask,
)
from darkseg.data.io import VOC_CLASSES, read_mask
from darkseg.errors import DataError

# VOC name -> COCO name where they differ.
_COCO_NAME = {"aeroplane": "airplane", "diningtable": "dining table", "motorbike": "motorcycle",
              "pottedplant": "potted plant", "sofa": "couch", "tvmonitor": "tv"}
# COCO-Stuff label value (= COCO category id of a thing) -> VOC id.
STUFF_TO_VOC: dict[int, int] = {
    COCO_CATEGORY_IDS[COCO_THINGS.index(_COCO_NAME.get(name, name))]: voc_id
    for voc_id, name in enumerate(VOC_CLASSES) if voc_id
}
NUM_LABELS = 182  # COCO-Stuff v1.1: 91 thing + 91 stuff labels, 0 = unlabeled
VERSION = "cocostuff10k-v1.1-voc20-v1"


def voc_lut() -> np.ndarray:
    """256-entry uint8 lookup: 0 (unlabeled) -> 255, the 20 VOC things -> their VOC ids, other labels -> 0."""
    lut = np.full(256, 255, np.uint8)
    lut[1 : NUM_LABELS + 1] = 0
    for label, voc_id in STUFF_TO_VOC.items():
        lut[label] = voc_id
    return lut


def _names(raw: object) -> list[str]:
    """The ``names`` field of a .mat file (a cell array or a padded char matrix) as a list of str."""
    array = np.asarray(raw)
    if array.dtype.kind == "U":
        return [str(n).strip() for n in array.reshape(-1)]
    return [str(np.asarray(n).reshape(-1)[0]).strip() if np.asarray(n).size else "" for n in array.reshape(-1)]


def read_labels(path: Path) -> np.ndarray:
    """The label map ``S`` of a COCO-Stuff 10K v1.1 annotation, its VOC class names checked when ``names`` is there."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(path)
    except FileNotFoundError:
        raise DataError(f"{path}: annotation not found; restore it or remove its id from imageLists/") from None
    except NotImplementedError:
        raise DataError(f"{path}: a MATLAB v7.3 file (COCO-Stuff 10K v1.0); use the v1.1 annotations") from None
    except (ValueError, TypeError, OSError) as err:
        raise DataError(f"{path}: unreadable .mat file ({err}); replace it") from None
    if "S" not in mat:
        raise DataError(f"{path}: no label map 'S'; use the COCO-Stuff 10K v1.1 annotations")
    labels = np.asarray(mat["S"])
    if labels.ndim != 2 or labels.size == 0 or labels.min() < 0 or labels.max() > NUM_LABELS:
        raise DataError(f"{path}: 'S' is not an H×W map of labels 0..{NUM_LABELS}; use the v1.1 annotations")
    if "names" in mat:
        names = _names(mat["names"])
        for label, voc_id in STUFF_TO_VOC.items():
            expected = _COCO_NAME.get(VOC_CLASSES[voc_id], VOC_CLASSES[voc_id])
            if len(names) < label or normalise_name(names[label - 1]) != normalise_name(expected):
                found = names[label - 1] if len(names) >= label else "nothing"
                raise DataError(f"{path}: label {label} is named {found!r}, expected {expected!r}; use the COCO-Stuff "
                                "10K v1.1 annotations")
    return labels.astype(np.uint8)


def _mask_job(job: tuple[str, str]) -> bool:
    """Write (or, on resume, read) one VOC mask; whether it holds a VOC-class pixel."""
    mat, out = Path(job[0]), Path(job[1])
    if out.is_file():
        mask = read_mask(out)
    else:
        mask = voc_lut()[read_labels(mat)]
        write_mask(out, mask)
    present = np.bincount(mask.reshape(-1), minlength=256)
    return bool(present[1 : len(VOC_CLASSES)].any())


def convert(root: Path, out: Path, workers: int = 0, progress: bool = True) -> dict[str, int]:
    """Write the VOC-class tree of COCO-Stuff 10K to ``out`` (resumable); returns the images per list."""
    root, out = Path(root), Path(out)
    splits = {split: read_id_list(root / "imageLists" / f"{split}.txt") for split in ("train", "test")}
    for split, ids in splits.items():
        for folder, ext in (("images", ".jpg"), ("annotations", ".mat")):
            missing = [i for i in ids if not (root / folder / f"{i}{ext}").is_file()]
            if missing:
                raise DataError(f"{root / folder / missing[0]}{ext}: listed in imageLists/{split}.txt but not found "
                                f"({len(missing)} of {len(ids)} missing); unpack the v1.1 archive under ROOT")
    inputs = [root / "images", root / "annotations", root / "imageLists"]
    start_tree(out, inputs, {"dataset": "cocostuff10k_voc", "source": str(root.resolve()), "rule": VERSION})
    lists: dict[str, list[str]] = {}
    for split, ids in splits.items():
        for i in ids:
            link_image(root / "images" / f"{i}.jpg", out / IMAGE_DIR / f"{i}.jpg")
        jobs = [(str(root / "annotations" / f"{i}.mat"), str(out / MASK_DIR / f"{i}.png")) for i in ids]
        has_voc = list(run_jobs(_mask_job, jobs, workers, f"cocostuff10k {split} masks", progress))
        if split == "train":
            lists["train"] = [i for i, keep in zip(ids, has_voc, strict=True) if keep]
            lists["train_all"] = ids
        else:
            lists[split] = ids
    counts = {split: len(ids) for split, ids in lists.items()}
    finish_tree(out, lists, counts)
    return counts
