"""User-facing messages say what to do: the key that named a missing file, how to get depth, never unsafe
unpickling; a dataset that does not fit data.root names both; cls_labels.npy is optional and `darkseg data
cls-labels` writes it from the masks."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from darkseg.cli import main
from darkseg.data.config import DataConfig
from darkseg.data.io import read_depth, write_palette_png
from darkseg.data.registry import build_dataset
from darkseg.data.scenes import ScenesConfig, generate_scenes
from darkseg.data.voc import VOCDataset, read_cls_labels
from darkseg.engine import checkpoint as ckpt
from darkseg.errors import CheckpointError, DataError
from darkseg.models.weights import read_weights

IDS = ["2007_000032", "2007_000039", "2008_000002"]
TINY_MODEL = ["model.backbone.width=0.0625", "train.threads=1"]


def make_voc(root: Path) -> Path:
    """A VOC tree of three 12×16 images; image k holds foreground class k + 1 and, for k = 2, also class 20."""
    (root / "JPEGImages").mkdir(parents=True)
    for k, sid in enumerate(IDS):
        Image.fromarray(np.full((12, 16, 3), 40 * k, np.uint8)).save(root / "JPEGImages" / f"{sid}.jpg")
        mask = np.zeros((12, 16), np.uint8)
        mask[2:6, 2:6] = k + 1
        mask[8:, 10:] = 20 if k == 2 else 0
        mask[0] = 255
        write_palette_png(root / "SegmentationClassAug" / f"{sid}.png", mask)
    (root / "ImageSets/Segmentation").mkdir(parents=True)
    (root / "ImageSets/Segmentation/train.txt").write_text("\n".join(IDS) + "\n")
    return root


def test_missing_imagenet_weights_say_how_to_train_from_scratch(tmp_path, capsys):
    missing = tmp_path / "nope.params"
    args = ["train", "configs/dgkd_wlss/voc_teacher.yaml", f"output_dir={tmp_path / 'run'}",
            f"model.backbone.pretrained={missing}", *TINY_MODEL]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"{missing}: pretrained weights file not found (model.backbone.pretrained)" in err
    assert "model.backbone.pretrained=null to train from scratch" in err and err.count("\n") == 1


def test_missing_teacher_weights_name_the_teacher_key(tmp_path, capsys):
    missing = tmp_path / "teacher.safetensors"
    args = ["train", "configs/dgkd_wlss/scenes_dgkd.yaml", f"output_dir={tmp_path / 'run'}",
            f"method.teacher.weights={missing}", "model.backbone.pretrained=null", *TINY_MODEL]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"{missing}: weights file not found; check method.teacher.weights" in err
    assert "model.backbone.pretrained" not in err


class Unsafe:
    """An arbitrary pickled object: weights-only loading refuses it."""


def test_pickle_refusal_never_advises_unsafe_loading(tmp_path):
    torch.save({"w": torch.zeros(2), "extra": Unsafe()}, tmp_path / "w.pth")
    with pytest.raises(CheckpointError) as err:
        read_weights(tmp_path / "w.pth")
    message = str(err.value)
    assert "w.pth: holds pickled Python objects" in message and "Unsafe" in message
    assert "weights_only" not in message and "\n" not in message
    (tmp_path / "junk.pth").write_bytes(b"not a zip")  # torch's text for this one also advises unsafe loading
    with pytest.raises(CheckpointError, match=r"junk\.pth: cannot read weights \(UnpicklingError: Unsupported") as err:
        read_weights(tmp_path / "junk.pth")
    assert "weights_only" not in str(err.value)
    ckpt.save_checkpoint(tmp_path, "c", {"x": torch.zeros(1)}, {"iteration": 1}, {})
    torch.save({"iteration": Unsafe()}, tmp_path / "c" / ckpt.STATE)
    with pytest.raises(CheckpointError) as err:
        ckpt.load_checkpoint(tmp_path / "c")
    assert "weights_only" not in str(err.value)


def test_missing_depth_says_how_to_provide_it(tmp_path):
    root = make_voc(tmp_path)
    checks = [
        lambda: VOCDataset(root, "train", ("image", "depth")),  # no depth folder
        lambda: (root / "depth").mkdir() or VOCDataset(root, "train", ("image", "depth"))[0],  # no depth map
        lambda: read_depth(root / "depth" / "x.png"),
    ]
    for check in checks:
        with pytest.raises(DataError) as err:
            check()
        message = str(err.value)
        assert "darkseg depth" in message and "data.depth_dir" in message and "drop" not in message


def test_dataset_that_does_not_fit_the_tree_names_both(tmp_path):
    voc = make_voc(tmp_path / "voc")
    with pytest.raises(DataError) as err:
        build_dataset(DataConfig(dataset="scenes", root=str(voc)), "train", ("image",))
    assert "data.dataset is 'scenes'" in str(err.value) and "found a VOC-layout tree" in str(err.value)
    assert str(err.value).endswith("set data.dataset: voc")
    scenes = ScenesConfig(size=32, n_train=2, n_val=1, n_test=0, n_pairs_train=0, n_pairs_val=0, workers=1)
    generate_scenes(tmp_path / "scenes", scenes, progress=False)
    with pytest.raises(DataError) as err:
        build_dataset(DataConfig(dataset="voc", root=str(tmp_path / "scenes")), "train", ("image",))
    assert "data.dataset is 'voc'" in str(err.value) and "found the built-in scenes benchmark" in str(err.value)
    assert str(err.value).endswith("set data.dataset: scenes")
    devkit = tmp_path / "devkit"
    make_voc(devkit / "VOCdevkit" / "VOC2012")
    with pytest.raises(DataError, match=f"set data.root: {devkit / 'VOCdevkit' / 'VOC2012'}$"):
        build_dataset(DataConfig(dataset="voc", root=str(devkit)), "train", ("image",))
    with pytest.raises(DataError, match=f"set data.dataset: voc and data.root: {devkit / 'VOCdevkit' / 'VOC2012'}$"):
        build_dataset(DataConfig(dataset="scenes", root=str(devkit)), "train", ("image",))
    ok = DataConfig(dataset="scenes", root=str(tmp_path / "scenes"), scenes=scenes)
    assert len(build_dataset(ok, "train", ("image",))) == 2
    assert len(build_dataset(DataConfig(dataset="voc", root=str(voc)), "train", ("image",))) == 3


def test_missing_cls_labels_is_optional_and_the_cli_writes_it(tmp_path, capsys):
    root = make_voc(tmp_path)
    out = root / "cls_labels.npy"
    with pytest.raises(DataError, match="cls_labels.npy: image-label file not found.*optional.*from the masks"):
        VOCDataset(root, "train", ("labels",), cls_labels=out)
    assert main(["data", "cls-labels", str(root)]) == 0
    assert "wrote the image-level labels of 3 images (train)" in capsys.readouterr().out
    table = read_cls_labels(out, 20)
    expected = {"2007000032": [1], "2007000039": [2], "2008000002": [3, 20]}  # classes painted by make_voc
    assert {k: (np.flatnonzero(v) + 1).tolist() for k, v in table.items()} == expected
    ds = VOCDataset(root, "train", ("labels",), cls_labels=out, label_mismatch="error")
    assert ds.check_labels() == []
    before = out.read_bytes()
    assert main(["data", "cls-labels", str(root), "--split", "train"]) == 1
    assert "cls_labels.npy: file exists; pass --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == before and not list(root.glob(".*tmp"))
    other = tmp_path / "labels" / "mine.npy"
    assert main(["data", "cls-labels", str(root), "--out", str(other), "--overwrite"]) == 0
    assert other.read_bytes() == before
