"""What an evaluation is scored against and at which scale: VOC's official val/test masks, the training scale."""

import logging

import numpy as np
import torch

from darkseg.config import load_config
from darkseg.data.io import write_palette_png
from darkseg.data.voc import VOCDataset
from darkseg.engine.runner import warn_if_off_training_scale


def _voc_tree(root):
    (root / "ImageSets/Segmentation").mkdir(parents=True)
    aug, official = np.zeros((4, 6), np.uint8), np.zeros((4, 6), np.uint8)
    aug[1:3, 1:4] = 15
    official[1:3, 1:4], official[0, :] = 15, 255  # the benchmark marks object borders void
    for split in ("train_aug", "val", "test"):
        (root / "ImageSets/Segmentation" / f"{split}.txt").write_text("2007_000032\n")
    write_palette_png(root / "SegmentationClassAug" / "2007_000032.png", aug)
    write_palette_png(root / "SegmentationClass" / "2007_000032.png", official)
    return aug, official


def test_voc_val_and_test_use_the_official_masks(tmp_path):
    aug, official = _voc_tree(tmp_path)
    val = VOCDataset(tmp_path, "val", ("mask",))
    assert (val.load(0)["mask"] == official).all() and val.mask_source.endswith("SegmentationClass")
    assert (VOCDataset(tmp_path, "test", ("mask",)).load(0)["mask"] == official).all()
    train = VOCDataset(tmp_path, "train_aug", ("mask",))
    assert (train.load(0)["mask"] == aug).all() and train.mask_source.endswith("SegmentationClassAug")


class _OneImage:
    def __len__(self):
        return 1

    def __getitem__(self, i):
        return {"mask": torch.zeros(500, 375, dtype=torch.int64)}


def test_eval_off_the_training_scale_is_warned(caplog):
    cfg = load_config("configs/dgkd_wlss/scenes_teacher.yaml",
                      ["data.augment.scale_mode=long_side", "data.augment.long_side=[160,200]"])
    with caplog.at_level(logging.WARNING):
        warn_if_off_training_scale(cfg, _OneImage())
    assert "160-200 px" in caplog.text and "eval.inference.scales=[0.36]" in caplog.text
    caplog.clear()
    cfg.eval.inference.scales = [1.0, 0.36]
    warn_if_off_training_scale(cfg, _OneImage())
    assert caplog.text == ""
