"""MS COCO 2014 converter on a tiny tree in the published layout: masks against hand-made expectations (crowd 255,
smaller instances on top, COCO ids -> 1..80), labels, lists, links to untouched originals, one-line errors,
resume and refusals; the COCO recipes load and train an iteration on the converted tree."""

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from darkseg.cli import main
from darkseg.config import load_config
from darkseg.data.coco import COCO_CLASSES, convert
from darkseg.data.config import DataConfig
from darkseg.data.io import read_mask
from darkseg.data.registry import build_dataset
from darkseg.engine.runner import build_method
from darkseg.errors import DataError

H, W = 40, 48
CATEGORIES = [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}, {"id": 18, "name": "dog"},
              {"id": 90, "name": "toothbrush"}]


def _name(split: str, n: int) -> str:
    return f"COCO_{split}2014_{n:012d}"


def _rect(x0: int, y0: int, x1: int, y1: int) -> list[list[float]]:
    """A polygon that pycocotools rasterises to exactly rows y0..y1-1, columns x0..x1-1."""
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def _rle(x0: int, y0: int, x1: int, y1: int) -> dict:
    binary = np.zeros((H, W), np.uint8, order="F")
    binary[y0:y1, x0:x1] = 1
    rle = mask_utils.encode(np.asfortranarray(binary))
    return {"size": rle["size"], "counts": rle["counts"].decode()}


def make_coco(root: Path) -> Path:
    """train: image 1 (person with a dog on it, a crowd of persons under a second person), image 2 (a toothbrush,
    compressed RLE), image 3 (no annotation); val: image 5 (a car)."""
    (root / "annotations").mkdir(parents=True)
    specs = {"train": [1, 2, 3], "val": [5]}
    for split, numbers in specs.items():
        (root / f"{split}2014").mkdir()
        for n in numbers:
            Image.fromarray(np.full((H, W, 3), 20 * n, np.uint8)).save(root / f"{split}2014/{_name(split, n)}.jpg")
    train = [
        {"id": 10, "image_id": 1, "category_id": 1, "segmentation": _rect(0, 0, 30, 30), "iscrowd": 0},
        {"id": 11, "image_id": 1, "category_id": 18, "segmentation": _rect(10, 10, 20, 20), "iscrowd": 0},
        {"id": 12, "image_id": 1, "category_id": 1, "segmentation": _rle(32, 20, 48, 40), "iscrowd": 1},
        {"id": 13, "image_id": 1, "category_id": 1, "segmentation": _rect(40, 30, 44, 36), "iscrowd": 0},
        {"id": 14, "image_id": 2, "category_id": 90, "segmentation": _rle(5, 5, 15, 25), "iscrowd": 0},
    ]
    val = [{"id": 20, "image_id": 5, "category_id": 3, "segmentation": _rect(4, 8, 40, 24), "iscrowd": 0}]
    for split, anns in (("train", train), ("val", val)):
        images = [{"id": n, "file_name": f"{_name(split, n)}.jpg", "height": H, "width": W} for n in specs[split]]
        coco = {"images": images, "annotations": anns, "categories": CATEGORIES}
        (root / f"annotations/instances_{split}2014.json").write_text(json.dumps(coco))
    return root


def expected_masks() -> dict[str, np.ndarray]:
    """Written by hand from the annotations: person = 1, car = 3, dog = 17, toothbrush = 80."""
    one = np.zeros((H, W), np.uint8)
    one[0:30, 0:30] = 1
    one[10:20, 10:20] = 17
    one[20:40, 32:48] = 255
    one[30:36, 40:44] = 1
    two = np.zeros((H, W), np.uint8)
    two[5:25, 5:15] = 80
    five = np.zeros((H, W), np.uint8)
    five[8:24, 4:40] = 3
    return {_name("train", 1): one, _name("train", 2): two, _name("val", 5): five}


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file()}


def _cfg(out: Path) -> DataConfig:
    return DataConfig(dataset="coco", root=str(out))


def test_convert_masks_labels_lists_and_links(tmp_path: Path):
    root = make_coco(tmp_path / "coco")
    before = _digest(root)
    counts = convert(root, tmp_path / "out", progress=False)
    assert counts == {"train": 2, "train_without_annotations": 1, "val": 1, "val_without_annotations": 0}
    out = tmp_path / "out"
    for stem, mask in expected_masks().items():
        assert np.array_equal(read_mask(out / "SegmentationClassAug" / f"{stem}.png"), mask), stem
        link = out / "JPEGImages" / f"{stem}.jpg"
        assert link.is_symlink() and not os.path.isabs(os.readlink(link))
        split = stem.split("_")[1][:-4]
        assert link.resolve() == (root / f"{split}2014" / f"{stem}.jpg").resolve()
    assert _digest(root) == before  # the originals are untouched
    train = build_dataset(_cfg(out), "train", ("image", "mask", "labels"))
    assert train.class_names == COCO_CLASSES and len(COCO_CLASSES) == 81
    assert train.ids == [_name("train", 1), _name("train", 2)]  # image 3 has no annotation
    first, second = train.load(0), train.load(1)
    assert np.flatnonzero(first["labels"]).tolist() == [0, 16]  # person, dog (ids 1, 17)
    assert np.flatnonzero(second["labels"]).tolist() == [79]  # toothbrush (id 80)
    assert (first["image"] == 20).all() and first["mask"].shape == (H, W)
    assert build_dataset(_cfg(out), "val", ("mask",)).ids == [_name("val", 5)]
    assert main(["data", "check", "coco", str(out), "--split", "train"]) == 0  # the tree check reads it like VOC


def test_cli_keep_empty_and_resume(tmp_path: Path, capsys):
    root = make_coco(tmp_path / "coco")
    out = tmp_path / "out"
    assert main(["data", "coco", str(root), "--out", str(out), "--keep-empty", "--quiet"]) == 0
    assert "train 3" in capsys.readouterr().out
    empty = out / "SegmentationClassAug" / f"{_name('train', 3)}.png"
    assert not read_mask(empty).any()
    masks = out / "SegmentationClassAug"
    kept, lost = masks / f"{_name('train', 1)}.png", masks / f"{_name('val', 5)}.png"
    stamp = kept.stat().st_mtime_ns
    lost.unlink()
    meta = json.loads((out / "darkseg_dataset.json").read_text())
    (out / "darkseg_dataset.json").write_text(json.dumps(dict(meta, complete=False)))  # as if interrupted
    with pytest.raises(DataError, match="did not finish; rerun 'darkseg data coco'"):
        build_dataset(_cfg(out), "train", ("mask",))
    assert main(["data", "coco", str(root), "--out", str(out), "--keep-empty", "--quiet", "--workers", "2"]) == 0
    assert kept.stat().st_mtime_ns == stamp  # kept, not rewritten
    assert np.array_equal(read_mask(lost), expected_masks()[_name("val", 5)])
    assert len(build_dataset(_cfg(out), "train", ("mask",))) == 3


def test_refusals_never_touch_inputs(tmp_path: Path):
    root = make_coco(tmp_path / "coco")
    before = _digest(root)
    for out in (root, root / "train2014", root / "annotations" / "x"):
        with pytest.raises(DataError, match="is, lies in or contains the input"):
            convert(root, out, progress=False)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="folder is not empty and holds no darkseg_dataset.json"):
        convert(root, other, progress=False)
    out = tmp_path / "out"
    convert(root, out, progress=False)
    with pytest.raises(DataError, match=r"converted with other settings \(keep_empty=False \(now True\)\)"):
        convert(root, out, keep_empty=True, progress=False)
    link = out / "JPEGImages" / f"{_name('train', 1)}.jpg"
    link.unlink()
    link.symlink_to(root / "val2014" / f"{_name('val', 5)}.jpg")
    with pytest.raises(DataError, match="points to .*; delete it or choose another --out"):
        convert(root, out, progress=False)
    assert _digest(root) == before
    with pytest.raises(DataError, match="data.dataset 'cocostuff10k_voc' reads the VOC-layout tree written by "
                       "'darkseg data cocostuff10k', but found a tree converted for 'coco'"):
        build_dataset(DataConfig(dataset="cocostuff10k_voc", root=str(out)), "train", ("mask",))


def _edit_json(root: Path, split: str, edit) -> None:
    path = root / f"annotations/instances_{split}2014.json"
    coco = json.loads(path.read_text())
    edit(coco)
    path.write_text(json.dumps(coco))


def test_one_line_errors(tmp_path: Path):
    root = make_coco(tmp_path / "coco")
    (root / "annotations/instances_val2014.json").rename(tmp_path / "val.json")
    with pytest.raises(DataError, match=r"instances_val2014.json: COCO annotation file not found; ROOT must hold"):
        convert(root, tmp_path / "out", progress=False)
    (tmp_path / "val.json").rename(root / "annotations/instances_val2014.json")
    _edit_json(root, "val", lambda c: c["categories"].append({"id": 91, "name": "unicorn"}))
    with pytest.raises(DataError, match=r"category 'unicorn' \(id 91\) is not one of the 80 COCO classes"):
        convert(root, tmp_path / "out", progress=False)
    _edit_json(root, "val", lambda c: c["categories"].pop())
    _edit_json(root, "val", lambda c: c["categories"].__setitem__(1, {"id": 3, "name": "bus"}))  # id 3 is car
    with pytest.raises(DataError, match="category 'bus' has id 3, COCO's is 6"):
        convert(root, tmp_path / "out", progress=False)
    _edit_json(root, "val", lambda c: c["categories"].__setitem__(1, {"id": 3, "name": "car"}))
    (root / "train2014" / f"{_name('train', 2)}.jpg").unlink()
    with pytest.raises(DataError) as err:
        convert(root, tmp_path / "out", progress=False)
    message = str(err.value)
    assert f"{_name('train', 2)}.jpg: image listed in instances_train2014.json not found (1 of 3 missing)" in message
    assert "\n" not in message and not (tmp_path / "out").exists()  # nothing written before the inputs are checked


TINY = ["data.num_workers=0", "data.batch_size=2", "data.augment.crop_size=32", "data.augment.scale_mode=relative",
        "data.augment.scale_range=[1.0,1.0]", "model.backbone.width=0.0625", "model.backbone.pretrained=null", "model.backbone.blocks=[1,1,1,1,1,1]",
        "model.backbone.pretrained=null", "model.backbone.freeze_bn=false", "model.backbone.frozen_stages=[]",
        "train.iterations=1", "train.val_every=0", "train.ckpt_every=0", "train.progress=false", "train.threads=1",
        "eval.inference.batch_size=2"]
CONFIGS = {
    "configs/plda/coco_seam.yaml": ["model.pcm_channels=[8,16]", "model.pcm_dim=16"],
    "configs/plda/coco_plda_dark.yaml": ["model.pcm_channels=[8,16]", "model.pcm_dim=16", "method.plda.hidden=[16,8]"],
    "configs/segmenters/coco_deeplabv1_r38_pseudo.yaml": [],
}


@pytest.mark.parametrize("config", sorted(CONFIGS), ids=lambda c: Path(c).stem)
def test_recipe_trains_an_iteration(config: str, tmp_path: Path):
    root = make_coco(tmp_path / "coco")
    out = tmp_path / "data"
    convert(root, out, progress=False)
    if "dark" in config:  # the dark view as `darkseg synth OUT/JPEGImages OUT/dark` writes it
        (out / "dark").mkdir()
        for link in (out / "JPEGImages").iterdir():
            Image.fromarray(np.full((H, W, 3), 3, np.uint8)).save(out / "dark" / link.name)
    shutil.copytree(out / "SegmentationClassAug", out / "pseudo")  # the retrain reads `darkseg pseudo` masks
    cfg = load_config(config, [f"data.root={out}", *TINY, *CONFIGS[config]])
    assert build_method(cfg, load_external=False).deploy_model().num_classes == 81
    assert cfg.data.dataset == "coco" and cfg.name == Path(config).stem
    run = tmp_path / "run"
    assert main(["train", config, f"data.root={out}", *TINY, *CONFIGS[config], f"output_dir={run}"]) == 0
    assert (run / "model_final.safetensors").is_file()
