"""LIS reader on a tiny tree in the published layout: N/N+1 pairing, COCO rasterisation, overlap rule, cache."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from darkseg.data.io import write_palette_png
from darkseg.data.lis import LIS_CLASSES, LISDataset
from darkseg.errors import ConfigError, DataError

H, W = 24, 32
# COCO-style category ids and names, as in the LIS annotation files.
CATEGORIES = [
    {"id": 2, "name": "bicycle"}, {"id": 4, "name": "motorcycle"}, {"id": 44, "name": "bottle"},
    {"id": 67, "name": "dining table"}, {"id": 72, "name": "tv"}, {"id": 6, "name": "bus"},
]  # fmt: skip


def _rect(x0: int, y0: int, x1: int, y1: int) -> list[list[float]]:
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def _rle(x0: int, y0: int, x1: int, y1: int, compressed: bool) -> dict:
    binary = np.zeros((H, W), np.uint8, order="F")
    binary[y0:y1, x0:x1] = 1
    rle = mask_utils.encode(np.asfortranarray(binary))
    if compressed:
        return {"size": rle["size"], "counts": rle["counts"].decode()}
    flat = binary.reshape(-1, order="F")
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    return {"size": [H, W], "counts": np.diff(np.concatenate([[0], changes])).tolist()}


def make_lis(root: Path, split: str = "train") -> Path:
    """LIS/RGB-normal/JPEGImages/<odd N>.png, LIS/RGB-dark/JPEGImages/<N+1>.JPG, annotations/*+1.json."""
    (root / "RGB-normal/JPEGImages").mkdir(parents=True)
    (root / "RGB-dark/JPEGImages").mkdir(parents=True)
    (root / "annotations").mkdir()
    images = []
    for k, n in enumerate((1, 3, 5)):
        Image.fromarray(np.full((H, W, 3), 10 * n, np.uint8)).save(root / f"RGB-normal/JPEGImages/{n}.png")
        Image.fromarray(np.full((H, W, 3), n + 1, np.uint8)).save(root / f"RGB-dark/JPEGImages/{n + 1}.JPG")
        images.append({"id": 100 + k, "file_name": f"./JPEGImages/{n + 1}.png", "height": H, "width": W})
    annotations = [
        # image "2": a large dining table with a smaller bottle on it (bottle wins), a crowd region, a bicycle
        {"id": 1, "image_id": 100, "category_id": 44, "segmentation": _rect(8, 4, 12, 10), "iscrowd": 0},
        {"id": 2, "image_id": 100, "category_id": 67, "segmentation": _rect(2, 2, 20, 14), "iscrowd": 0},
        {"id": 3, "image_id": 100, "category_id": 6, "segmentation": _rle(24, 16, 32, 24, False), "iscrowd": 1},
        {"id": 4, "image_id": 100, "category_id": 2, "segmentation": _rle(26, 20, 30, 24, True), "iscrowd": 0},
        # image "4": a motorcycle (uncompressed RLE) and a tv (compressed RLE); image "6": no annotation
        {"id": 5, "image_id": 101, "category_id": 4, "segmentation": _rle(0, 0, 10, 10, False), "iscrowd": 0},
        {"id": 6, "image_id": 101, "category_id": 72, "segmentation": _rle(20, 12, 30, 20, True), "iscrowd": 0},
    ]
    coco = {"images": images, "annotations": annotations, "categories": CATEGORIES}
    (root / f"annotations/lis_coco_JPG_{split}+1.json").write_text(json.dumps(coco))
    return root


def test_pairs_and_masks(tmp_path: Path):
    ds = LISDataset(make_lis(tmp_path / "LIS"), "train", ("image", "dark", "mask", "labels"))
    assert ds.ids == ["2", "4", "6"] and ds.class_names == LIS_CLASSES and ds.num_classes == 9
    s = ds.load(0)
    assert s["id"] == "2" and np.abs(s["dark"].astype(int) - 2).max() <= 2  # dark N+1 = 2.JPG
    assert (s["image"] == 10).all()  # paired with normal N = 1.png
    mask = s["mask"]
    assert mask.dtype == np.uint8 and mask.shape == (H, W)
    assert mask[6, 10] == 5 and mask[3, 4] == 7 and mask[0, 0] == 0  # smaller bottle over the dining table
    assert mask[18, 25] == 255 and mask[22, 28] == 1  # crowd -> ignore, bicycle painted over it
    assert np.flatnonzero(s["labels"]).tolist() == [0, 4, 6]  # bicycle, bottle, diningtable
    m4 = ds.load(1)["mask"]
    assert m4[5, 5] == 3 and m4[15, 25] == 8 and (m4[:, 10:20][:12] == 0).all()
    assert not ds.load(2)["mask"].any() and not ds.load(2)["labels"].any()


def test_depth_view_and_cache(tmp_path: Path):
    root = make_lis(tmp_path / "LIS")
    (root / "depth").mkdir()
    for sid in ("2", "4", "6"):
        cv2.imwrite(str(root / "depth" / f"{sid}_depth.png"), np.full((H, W), 255, np.uint8))
    with pytest.raises(ConfigError, match="depth_dir"):
        LISDataset(root, "train", ("dark", "depth"))
    before = sorted(p for p in root.rglob("*"))
    ds = LISDataset(root, "train", ("dark", "depth", "mask"), depth_dir="depth", cache_dir=tmp_path / "cache")
    s = ds.load(0)
    assert s["depth"].shape == (H, W) and (s["depth"] == 1).all()
    cached = list((tmp_path / "cache").rglob("2.png"))
    assert len(cached) == 1 and sorted(p for p in root.rglob("*")) == before
    write_palette_png(cached[0], np.full((H, W), 4, np.uint8))  # the cache is read back, not recomputed
    again = LISDataset(root, "train", ("mask",), cache_dir=tmp_path / "cache")
    assert (again.load(0)["mask"] == 4).all()


def test_bad_input(tmp_path: Path):
    root = make_lis(tmp_path / "LIS")
    (root / "RGB-dark/JPEGImages/4.JPG").unlink()
    Image.fromarray(np.zeros((H + 1, W, 3), np.uint8)).save(root / "RGB-normal/JPEGImages/5.png")
    ds = LISDataset(root, "train", ("image", "dark"))
    with pytest.raises(DataError, match="RGB-dark/JPEGImages/4.JPG: file for the 'dark' view not found"):
        ds[1]
    with pytest.raises(DataError, match=r"5.png: size 32x25 differs from lis_coco_JPG_train\+1.json"):
        ds[2]
    with pytest.raises(DataError, match=r"lis_coco_JPG_test\+1.json: LIS annotation file not found"):
        LISDataset(root, "test", ("dark",))
    path = root / "annotations/lis_coco_JPG_train+1.json"
    coco = json.loads(path.read_text())
    coco["categories"].append({"id": 1, "name": "person"})
    path.write_text(json.dumps(coco))
    with pytest.raises(DataError, match="category 'person' is not one of the 8 LIS classes"):
        LISDataset(root, "train", ("mask",))
    coco["categories"].pop()
    coco["images"][0]["file_name"] = "./JPEGImages/two.png"
    path.write_text(json.dumps(coco))
    with pytest.raises(DataError, match="'./JPEGImages/two.png' is not numbered"):
        LISDataset(root, "train", ("mask",))
    coco["images"][0]["file_name"] = "2.png"
    coco["annotations"][0]["segmentation"] = {"size": [H, W], "counts": 17}
    path.write_text(json.dumps(coco))
    with pytest.raises(DataError, match=r"\(image 2\): invalid segmentation"):
        LISDataset(root, "train", ("mask",))[0]
    del coco["annotations"][0]["segmentation"]
    path.write_text(json.dumps(coco))
    with pytest.raises(DataError, match="not a COCO-style annotation file"):
        LISDataset(root, "train", ("mask",))
    path.write_text("{not json")
    with pytest.raises(DataError, match=r"train\+1.json: not a JSON file"):
        LISDataset(root, "train", ("mask",))
