"""COCO-Stuff 10K VOC-class converter on a tiny v1.1 tree (.mat files written with scipy.io.savemat): the 20 VOC
things at their VOC ids, other labels background, unlabeled 255; the train filter; one-line errors; resume; the ASDT
recipes load and train an iteration on it."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from darkseg.cli import main
from darkseg.config import load_config
from darkseg.data.cocostuff import convert
from darkseg.data.config import DataConfig
from darkseg.data.io import VOC_CLASSES, read_mask
from darkseg.data.registry import build_dataset
from darkseg.engine.runner import build_method
from darkseg.errors import DataError

H, W = 40, 48
# COCO-Stuff v1.1 label (= COCO id for things): (name, VOC id), written out by hand.
VOC_THINGS = {
    1: ("person", 15), 2: ("bicycle", 2), 3: ("car", 7), 4: ("motorcycle", 14), 5: ("airplane", 1), 6: ("bus", 6),
    7: ("train", 19), 9: ("boat", 4), 16: ("bird", 3), 17: ("cat", 8), 18: ("dog", 12), 19: ("horse", 13),
    20: ("sheep", 17), 21: ("cow", 10), 44: ("bottle", 5), 62: ("chair", 9), 63: ("couch", 18),
    64: ("potted plant", 16), 67: ("dining table", 11), 72: ("tv", 20),
}  # fmt: skip
HAND_MAP = {label: voc for label, (_, voc) in VOC_THINGS.items()}
NAMES = {8: "truck", 124: "grass", 150: "road", **{label: name for label, (name, _) in VOC_THINGS.items()}}
# image id -> labelled rectangles (label, y0, y1, x0, x1), painted in order on unlabeled (0)
TREE = {
    "train": {
        "COCO_train2014_000000000010": [(124, 0, 40, 0, 48), (1, 5, 30, 5, 20), (18, 20, 35, 25, 40),
                                        (8, 0, 10, 30, 48), (63, 32, 40, 0, 10), (0, 0, 4, 0, 4)],
        "COCO_train2014_000000000011": [(150, 0, 40, 0, 48), (8, 10, 20, 10, 20)],  # no VOC class
        "COCO_train2014_000000000012": [(72, 0, 20, 0, 48)],
    },
    "test": {"COCO_train2014_000000000013": [(124, 20, 40, 0, 48), (5, 2, 12, 2, 40)]},
}


def _names() -> np.ndarray:
    names = np.empty((1, 182), dtype=object)
    names[0, :] = [NAMES.get(label, f"label{label}") for label in range(1, 183)]
    return names


def make_cocostuff(root: Path, names: np.ndarray | None = None) -> Path:
    for folder in ("images", "annotations", "imageLists"):
        (root / folder).mkdir(parents=True)
    for split, images in TREE.items():
        (root / "imageLists" / f"{split}.txt").write_text("".join(f"{i}\n" for i in images))
        for k, (sid, rects) in enumerate(images.items()):
            Image.fromarray(np.full((H, W, 3), 30 * k, np.uint8)).save(root / "images" / f"{sid}.jpg")
            labels = np.zeros((H, W), np.uint8)
            for label, y0, y1, x0, x1 in rects:
                labels[y0:y1, x0:x1] = label
            scipy.io.savemat(root / "annotations" / f"{sid}.mat",
                             {"S": labels, "names": _names() if names is None else names})
    return root


def expected(sid: str) -> np.ndarray:
    rects = {**TREE["train"], **TREE["test"]}[sid]
    mask = np.full((H, W), 255, np.uint8)
    for label, y0, y1, x0, x1 in rects:
        mask[y0:y1, x0:x1] = 255 if label == 0 else HAND_MAP.get(label, 0)
    return mask


def _cfg(out: Path) -> DataConfig:
    return DataConfig(dataset="cocostuff10k_voc", root=str(out))


def test_convert_masks_train_filter_and_labels(tmp_path: Path, capsys):
    root = make_cocostuff(tmp_path / "cocostuff")
    out = tmp_path / "out"
    assert main(["data", "cocostuff10k", str(root), "--out", str(out), "--quiet"]) == 0
    assert "train 2, train_all 3, test 1" in capsys.readouterr().out
    for sid in [*TREE["train"], *TREE["test"]]:
        assert np.array_equal(read_mask(out / "SegmentationClassAug" / f"{sid}.png"), expected(sid)), sid
        assert (out / "JPEGImages" / f"{sid}.jpg").resolve() == (root / "images" / f"{sid}.jpg").resolve()
    train = build_dataset(_cfg(out), "train", ("image", "mask", "labels"))
    assert train.class_names == VOC_CLASSES
    assert train.ids == ["COCO_train2014_000000000010", "COCO_train2014_000000000012"]
    names = [VOC_CLASSES[i + 1] for i in np.flatnonzero(train.load(0)["labels"])]
    assert names == ["dog", "person", "sofa"]
    assert len(build_dataset(_cfg(out), "train_all", ("mask",))) == 3
    assert build_dataset(_cfg(out), "test", ("mask",)).ids == list(TREE["test"])
    stamp = (out / "SegmentationClassAug" / "COCO_train2014_000000000010.png").stat().st_mtime_ns
    assert main(["data", "cocostuff10k", str(root), "--out", str(out), "--quiet"]) == 0  # resume: nothing rewritten
    assert (out / "SegmentationClassAug" / "COCO_train2014_000000000010.png").stat().st_mtime_ns == stamp
    assert json.loads((out / "darkseg_dataset.json").read_text())["counts"]["train"] == 2


def test_one_line_errors(tmp_path: Path):
    wrong = _names()
    wrong[0, 17] = "cat"  # label 18 must be dog
    root = make_cocostuff(tmp_path / "bad_names", wrong)
    with pytest.raises(DataError, match=r"COCO_train2014_000000000010.mat: label 18 is named 'cat', expected 'dog'"):
        convert(root, tmp_path / "out1", progress=False)
    root = make_cocostuff(tmp_path / "cocostuff")
    mat = root / "annotations" / "COCO_train2014_000000000012.mat"
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 .".ljust(116) + bytes(8) + b"\x00\x02IM"
    mat.write_bytes(header + bytes(64))  # the header of a v1.0 (MATLAB 7.3 / HDF5) annotation
    with pytest.raises(DataError, match=r"000012.mat: a MATLAB v7.3 file \(COCO-Stuff 10K v1.0\); use the v1.1"):
        convert(root, tmp_path / "out2", progress=False)
    mat.unlink()
    with pytest.raises(DataError) as err:
        convert(root, tmp_path / "out3", progress=False)
    assert "000012.mat: listed in imageLists/train.txt but not found (1 of 3 missing)" in str(err.value)
    assert not (tmp_path / "out3").exists()
    with pytest.raises(DataError, match="reads the VOC-layout tree written by 'darkseg data cocostuff10k', but found "
                       "no darkseg_dataset.json"):
        build_dataset(_cfg(root), "train", ("mask",))


COMMON = ["data.num_workers=0", "data.batch_size=2", "data.augment.crop_size=32", "model.backbone.pretrained=null",
          "model.backbone.freeze_bn=false", "train.iterations=1", "train.val_every=0", "train.ckpt_every=0",
          "train.progress=false", "train.threads=1", "eval.inference.batch_size=2"]
ASDT = ["model.backbone.width=0.0625", "model.backbone.pretrained=null", "model.backbone.blocks=[1,1,1,1,1,1]", "model.backbone.frozen_stages=[]",
        "model.seg_channels=8", "method.distill_start=0", "method.cam_scales=[1.0,0.5]", "method.knowledge.workers=0"]
CONFIGS = {
    "configs/asdt/cocostuff_asdt.yaml": ASDT,
    "configs/asdt/cocostuff_rrm.yaml": ASDT,
    "configs/segmenters/coco_stuff_deeplabv2_r101_pseudo.yaml": ["model.backbone.width=0.125",
                                                                 "model.backbone.blocks=[1,1,1,1]"],
}


@pytest.mark.parametrize("config", sorted(CONFIGS), ids=lambda c: Path(c).stem)
def test_recipe_trains_an_iteration(config: str, tmp_path: Path):
    out = tmp_path / "data"
    convert(make_cocostuff(tmp_path / "cocostuff"), out, progress=False)
    shutil.copytree(out / "SegmentationClassAug", out / "pseudo")  # the retrain reads `darkseg pseudo` masks
    cfg = load_config(config, [f"data.root={out}", *COMMON, *CONFIGS[config]])
    assert build_method(cfg, load_external=False).deploy_model().num_classes == 21
    assert cfg.data.dataset == "cocostuff10k_voc" and cfg.name == Path(config).stem
    run = tmp_path / "run"
    assert main(["train", config, f"data.root={out}", *COMMON, *CONFIGS[config], f"output_dir={run}"]) == 0
    assert (run / "model_final.safetensors").is_file()
