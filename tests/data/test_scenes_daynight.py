"""The scenes day→night benchmark: deterministic cached generation, static vs dynamic classes across a pair."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from darkseg.align.estimate import homography_flow, warp
from darkseg.data.config import DataConfig
from darkseg.data.registry import build_dataset, static_classes
from darkseg.data.scenes_daynight import CLASSES, STATIC_CLASSES, DayNightConfig, ensure, read_meta
from darkseg.errors import DataError

CFG = DayNightConfig(n_train=4, n_val=2, n_night_train=6, n_night_val=2, n_night_test=2, seed=3)


def _identity(images, seeds):  # a darkener that leaves the relit night image as is (fast, for tests)
    return images


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return ensure(tmp_path_factory.mktemp("dn") / "scenes_daynight", CFG, _identity, progress=False)


def test_generation_is_deterministic_and_cached(root: Path, tmp_path: Path):
    again = ensure(tmp_path / "again", CFG, _identity, progress=False)
    for rel in ("images/night_train/night_train_00003.png", "day/night_val/night_val_00001.png",
                "masks/train/train_00002.png", "align_truth/night_train.json"):
        assert (root / rel).read_bytes() == (again / rel).read_bytes()
    stamp = (root / "scenes_daynight.json").stat().st_mtime_ns
    ensure(root, CFG, _identity, progress=False)  # reused
    assert (root / "scenes_daynight.json").stat().st_mtime_ns == stamp
    with pytest.raises(DataError, match="another config: seed=3 \\(wanted 4\\)"):
        ensure(root, CFG.model_copy(update={"seed": 4}), _identity, progress=False)
    assert read_meta(root)["classes"] == list(CLASSES)


def test_splits_and_views(root: Path):
    cfg = DataConfig(dataset="scenes_daynight", root=str(root), scenes_daynight=CFG)
    assert static_classes(cfg) == STATIC_CLASSES
    source = build_dataset(cfg, "train", ("image", "mask"))
    assert len(source) == 4 and source.load(0)["image"].shape == (CFG.height, CFG.width, 3)
    night = build_dataset(cfg, "night_train", ("image", "day", "mask"))
    s = night.load(0)
    assert s["day"].shape == s["image"].shape and s["mask"].shape == (CFG.height, CFG.width)


def test_static_classes_stay_in_place_dynamic_ones_move(root: Path):
    """The true night→day map carries the day labels onto the night labels for static classes only."""
    truth = json.loads((root / "align_truth/night_train.json").read_text())
    static_agree, dynamic_agree, static_total, dynamic_total = 0, 0, 0, 0
    for sid, matrix in truth.items():
        night = np.array(Image.open(root / f"masks/night_train/{sid}.png"))
        day = np.array(Image.open(root / f"day_masks/night_train/{sid}.png"))
        m = np.eye(3)
        m[:2] = matrix
        flow = homography_flow(m, night.shape)
        warped, valid = warp(day, np.round(flow))  # nearest-like: integer displacements after rounding
        is_static = (night < len(STATIC_CLASSES)) & valid
        is_dynamic = (night >= len(STATIC_CLASSES)) & valid
        static_agree += int((warped == night)[is_static].sum())
        static_total += int(is_static.sum())
        dynamic_agree += int((warped == night)[is_dynamic].sum())
        dynamic_total += int(is_dynamic.sum())
    assert static_agree / static_total > 0.9
    assert dynamic_total > 0 and dynamic_agree / dynamic_total < 0.6


def test_source_only_recipe_trains_and_evaluates_from_the_cli(tmp_path: Path, capsys):
    from darkseg.cli import main

    small = [f"data.scenes_daynight.{k}={v}" for k, v in
             {"n_train": 8, "n_val": 2, "n_night_train": 2, "n_night_val": 2, "n_night_test": 3}.items()]
    common = ["configs/daynight/scenes_source_only_deeplabv2.yaml", f"data.root={tmp_path / 'dn'}",
              f"output_dir={tmp_path / 'run'}", "data.num_workers=0", "train.threads=1", *small]
    assert main(["train", *common, "train.iterations=2", "train.progress=false", "data.batch_size=2"]) == 0
    capsys.readouterr()
    assert main(["eval", *common, "--datasets", "scenes_daynight_val,scenes_daynight_night_test", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)["datasets"]
    assert list(result["scenes_daynight_night_test"]["per_class_iou"]) == list(CLASSES)
    assert main(["data", "check", "scenes_daynight", str(tmp_path / "dn"), "--split", "night_test", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 3
