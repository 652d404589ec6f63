"""The `folder` dataset (your own data): index and colour masks, tags CSV, paired day images, bad input."""

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from darkseg.cli import main
from darkseg.data.check import check_split, config_for_root
from darkseg.data.config import DataConfig
from darkseg.data.registry import build_dataset, class_names, static_classes
from darkseg.errors import DataError

H, W = 10, 14
PALETTE = [[0, 0, 0], [200, 0, 0], [0, 200, 0]]


def make_folder(root: Path, mask_format: str = "index", tags: str | None = None, day: bool = False) -> Path:
    spec = {"classes": ["background", "car", "tree"], "palette": PALETTE, "ignore_index": 9,
            "mask_format": mask_format, "static_classes": ["tree"]}
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset.yaml").write_text(yaml.safe_dump(spec))
    rng = np.random.default_rng(0)
    for k, sid in enumerate(["a", "sub/b"]):
        for folder in ["images"] + (["day"] if day else []):
            path = root / folder / "train" / f"{sid}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(path)
        ids = np.zeros((H, W), np.uint8)
        ids[:, :5] = 1 + k
        ids[0] = 9  # ignore_index
        path = root / "masks" / "train" / f"{sid}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        if mask_format == "index":
            Image.fromarray(ids).save(path)
        else:
            rgb = np.array(PALETTE + [[0] * 3] * 7, np.uint8)[ids]
            rgb[0] = (255, 255, 255)  # white = not in the palette
            Image.fromarray(rgb).save(path)
    if tags is not None:
        (root / "tags.csv").write_text(tags)
    return root


def _ds(root: Path, views):
    return build_dataset(DataConfig(dataset="folder", root=str(root)), "train", views)


def test_index_masks_ignore_index_and_derived_tags(tmp_path: Path):
    root = make_folder(tmp_path)
    cfg = DataConfig(dataset="folder", root=str(root))
    assert class_names(cfg) == ("background", "car", "tree") and static_classes(cfg) == ("tree",)
    ds = _ds(root, ("image", "mask", "labels"))
    assert ds.ids == ["a", "sub/b"]
    s = ds.load(1)
    assert (s["mask"][0] == 255).all() and (s["mask"][1:, :5] == 2).all() and (s["mask"][1:, 5:] == 0).all()
    assert s["labels"].tolist() == [0.0, 1.0]


def test_colour_masks_and_unknown_colour(tmp_path: Path):
    root = make_folder(tmp_path, "colour")
    with pytest.raises(DataError, match=r"a.png: colour \(255, 255, 255\) is not in the palette"):
        _ds(root, ("mask",)).load(0)
    rgb = np.array(Image.open(root / "masks/train/a.png"))
    rgb[0] = 0
    Image.fromarray(rgb).save(root / "masks/train/a.png")
    assert (_ds(root, ("mask",)).load(0)["mask"][1:, :5] == 1).all()


def test_tags_csv_day_images_and_bad_rows(tmp_path: Path):
    root = make_folder(tmp_path, tags="a,car,tree\nsub/b,background\n", day=True)
    ds = _ds(root, ("image", "day", "labels"))
    assert ds.load(0)["labels"].tolist() == [1.0, 1.0] and ds.load(1)["labels"].tolist() == [0.0, 0.0]
    assert ds.load(0)["day"].shape == (H, W, 3)
    (root / "tags.csv").write_text("a,car\n")
    with pytest.raises(DataError, match=r"no image tags for 'sub/b'"):
        check_split(config_for_root("folder", root), "train")
    (root / "tags.csv").write_text("a,bus\n")
    with pytest.raises(DataError, match=r"tags.csv:1: unknown class 'bus'"):
        _ds(root, ("labels",))


def test_bad_spec_and_missing_split_are_one_line(tmp_path: Path, capsys):
    root = make_folder(tmp_path)
    with pytest.raises(DataError, match="split folder not found; splits here: train"):
        build_dataset(DataConfig(dataset="folder", root=str(root)), "val", ("image",))
    (root / "dataset.yaml").write_text("classes: [a, b]\nignore_index: 1\n")
    assert main(["data", "check", "folder", str(root), "--split", "train"]) == 1
    assert "dataset.yaml: (top level): Value error, ignore_index 1 must be >=" in capsys.readouterr().err
