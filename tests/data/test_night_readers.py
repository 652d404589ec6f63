"""Cityscapes-class readers on tiny trees in their published layouts; `darkseg data check` on them; bad input."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from PIL import Image

from darkseg.cli import main
from darkseg.data.check import check_split, config_for_root
from darkseg.data.cityscapes import CITYSCAPES_CLASSES, LABEL_ID_TO_TRAIN_ID
from darkseg.data.config import DataConfig
from darkseg.data.registry import DATASETS, build_dataset, class_names, static_classes
from darkseg.errors import DataError

H, W = 32, 48


def _img(path: Path, seed: int = 0, size=(H, W)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)


def _label(path: Path, values: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.astype(np.uint8)).save(path)


def _label_ids() -> np.ndarray:
    """Left half road (7), right half car (26), one row license plate (255 as uint8 -1), one row unlabelled (0)."""
    a = np.full((H, W), 7, np.uint8)
    a[:, W // 2:] = 26
    a[0] = 255
    a[1] = 0
    return a


def make_cityscapes(root: Path) -> Path:
    for split, city in (("train", "aachen"), ("val", "lindau")):
        for k in range(2):
            stem = f"{city}_00000{k}_000019"
            _img(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", k)
            _label(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", _label_ids())
    return root


def make_dark_zurich(root: Path) -> Path:
    rgb = root / "rgb_anon"
    lines = []
    for k in range(3):
        night, day = f"train/night/GOPR0351/GOPR0351_frame_00000{k}", f"train/day/GOPR0345/GOPR0345_frame_00008{k}"
        _img(rgb / f"{night}_rgb_anon.png", k)
        _img(rgb / f"{day}_rgb_anon.png", 10 + k)
        lines.append(f"{night},{day}")
    (root / "zurich_dn_pair_train.csv").write_text("\n".join(lines) + "\n")
    frame = "GOPR0356_frame_000321"
    _img(rgb / "val" / "night" / "GOPR0356" / f"{frame}_rgb_anon.png")
    _img(rgb / "val_ref" / "day" / "GOPR0356_ref" / f"{frame}_ref_rgb_anon.png", 1)
    train_ids = np.vectorize(lambda v: LABEL_ID_TO_TRAIN_ID.get(int(v), 255))(_label_ids())
    _label(root / "gt" / "val" / "night" / "GOPR0356" / f"{frame}_gt_labelTrainIds.png", train_ids)
    test = "GOPR0364_frame_000001"
    _img(rgb / "test" / "night" / "GOPR0364" / f"{test}_rgb_anon.png")
    _img(rgb / "test_ref" / "day" / "GOPR0364_ref" / f"{test}_ref_000123_rgb_anon.png", 2)
    return root


def make_acdc(root: Path) -> Path:
    for split in ("train", "val", "test"):
        frame = f"GOPR0351_frame_00000{len(split)}"
        _img(root / "rgb_anon" / "night" / split / "GOPR0351" / f"{frame}_rgb_anon.png")
        _img(root / "rgb_anon" / "night" / f"{split}_ref" / "GOPR0351" / f"{frame}_rgb_ref_anon.png", 1)
        if split != "test":
            _label(root / "gt" / "night" / split / "GOPR0351" / f"{frame}_gt_labelTrainIds.png", np.full((H, W), 13))
    return root


def make_nighttime_driving(root: Path) -> Path:
    for stem in ("0_frame_0001", "01_frame_0002"):
        _img(root / "leftImg8bit" / "test" / "night" / f"{stem}_leftImg8bit.png")
        _label(root / "gtCoarse_daytime_trainvaltest" / "test" / "night" / f"{stem}_gtCoarse_labelIds.png",
               _label_ids())
    return root


def make_bdd(root: Path) -> Path:
    from darkseg.data.night_sets import BDD_NIGHT_LIST

    for line in BDD_NIGHT_LIST.read_text().split()[:87]:
        part, image_id = line.split("/")
        path = root / "images" / "10k" / part / f"{image_id}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (W, H)).save(path)
        _label(root / "labels" / "sem_seg" / "masks" / part / f"{image_id}.png", np.full((H, W), 0))
    return root


def make_nightcity(root: Path) -> Path:
    for split in ("train", "val"):
        _img(root / "images" / split / f"Chicago_{split}.png")
        _label(root / "label" / split / f"Chicago_{split}_labelIds.png", _label_ids())
    return root


def _ds(name: str, root: Path, split: str, views=("image", "mask")):
    return build_dataset(DataConfig(dataset=name, root=str(root)), split, views)


def test_cityscapes_label_ids_map_to_train_ids(tmp_path: Path):
    ds = _ds("cityscapes", make_cityscapes(tmp_path), "train", ("image", "mask", "labels"))
    assert len(ds) == 2 and ds.ids[0] == "aachen_000000_000019"
    s = ds.load(0)
    expected = np.full((H, W), 0, np.uint8)
    expected[:, W // 2:] = 13  # car
    expected[:2] = 255
    assert (s["mask"] == expected).all() and s["image"].shape == (H, W, 3)
    assert class_names(DataConfig(dataset="cityscapes")) == CITYSCAPES_CLASSES
    assert static_classes(DataConfig(dataset="cityscapes")) == CITYSCAPES_CLASSES[:11]


def test_dark_zurich_pairs_val_and_test(tmp_path: Path):
    root = make_dark_zurich(tmp_path)
    train = _ds("dark_zurich", root, "train", ("image", "day"))
    assert train.ids == [f"GOPR0351_frame_00000{k}" for k in range(3)]
    s = train.load(1)
    day = root / "rgb_anon/train/day/GOPR0345/GOPR0345_frame_000081_rgb_anon.png"
    assert (s["day"] == np.asarray(Image.open(day))).all()
    with pytest.raises(DataError, match="mask"):
        _ds("dark_zurich", root, "train", ("image", "mask"))
    val = _ds("dark_zurich", root, "val", ("image", "mask", "day")).load(0)
    assert val["mask"][5, 0] == 0 and val["mask"][5, -1] == 13 and (val["mask"][:2] == 255).all()
    test = _ds("dark_zurich", root, "test", ("image", "day"))
    assert test.load(0)["day"].shape == (H, W, 3)
    assert "mask" not in test.available


def test_acdc_nighttime_driving_bdd_nightcity(tmp_path: Path):
    acdc = _ds("acdc_night", make_acdc(tmp_path / "acdc"), "val", ("image", "mask", "day")).load(0)
    assert (acdc["mask"] == 13).all() and acdc["day"].shape == (H, W, 3)
    assert "mask" not in _ds("acdc_night", tmp_path / "acdc", "test", ("image",)).available
    nd = _ds("nighttime_driving", make_nighttime_driving(tmp_path / "nd"), "test")
    assert len(nd) == 2 and nd.load(0)["mask"][5, -1] == 13
    bdd = _ds("bdd100k_night", make_bdd(tmp_path / "bdd"), "test")
    assert len(bdd) == 87 and (bdd.load(86)["mask"] == 0).all()
    nc = _ds("nightcity", make_nightcity(tmp_path / "nc"), "val")
    assert nc.ids == ["Chicago_val"] and nc.load(0)["mask"][5, 0] == 0


def test_every_night_dataset_is_registered():
    for name in ("cityscapes", "dark_zurich", "acdc_night", "nighttime_driving", "bdd100k_night", "nightcity",
                 "scenes_daynight", "folder"):
        assert name in DATASETS


def test_ids_outside_the_table_name_the_file(tmp_path: Path):
    root = make_cityscapes(tmp_path)
    bad = root / "gtFine/train/aachen/aachen_000001_000019_gtFine_labelIds.png"
    _label(bad, np.full((H, W), 40))
    with pytest.raises(DataError, match=r"aachen_000001_000019_gtFine_labelIds.png: label values 40 .*label ids"):
        _ds("cityscapes", root, "train").load(1)


def test_data_check_json_and_first_bad_file(tmp_path: Path, capsys):
    root = make_cityscapes(tmp_path)
    assert main(["data", "check", "cityscapes", str(root), "--split", "train", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["images"] == 2
    assert out["class_pixels"]["road"] == 2 * (H - 2) * (W // 2)
    assert out["class_pixels"]["car"] == 2 * (H - 2) * (W - W // 2)
    assert sum(out["class_pixels"].values()) == 2 * (H - 2) * W  # 255 not counted
    (root / "gtFine/train/aachen/aachen_000001_000019_gtFine_labelIds.png").unlink()
    assert main(["data", "check", "cityscapes", str(root), "--split", "train", "--json"]) == 1
    assert "aachen_000001_000019_gtFine_labelIds.png: file not found" in capsys.readouterr().err


def test_check_reports_a_pair_naming_a_missing_image(tmp_path: Path):
    root = make_dark_zurich(tmp_path)
    (root / "rgb_anon/train/day/GOPR0345/GOPR0345_frame_000082_rgb_anon.png").unlink()
    with pytest.raises(DataError, match="GOPR0345_frame_000082_rgb_anon.png: file not found"):
        check_split(config_for_root("dark_zurich", root), "train")
    (root / "zurich_dn_pair_train.csv").write_text("train/night/a/b\n")
    with pytest.raises(DataError, match=r"zurich_dn_pair_train.csv:1: expected 'night_path,day_path'"):
        check_split(config_for_root("dark_zurich", root), "train")


def test_eval_on_several_night_sets_and_dark_zurich_server_files(tmp_path: Path, capsys):
    make_cityscapes(tmp_path / "cs")
    make_dark_zurich(tmp_path / "dz")
    make_nighttime_driving(tmp_path / "nd")
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump({
        "name": "tiny", "output_dir": str(tmp_path / "run"),
        "data": {"dataset": "cityscapes", "root": str(tmp_path / "cs"), "batch_size": 2, "num_workers": 0,
                 "roots": {"dark_zurich": str(tmp_path / "dz"), "nighttime_driving": str(tmp_path / "nd")},
                 "augment": {"crop_size": 32, "scale_mode": "relative", "scale_range": [1.0, 1.0]}},
        "model": {"name": "deeplabv2", "backbone": {"name": "resnet", "depth": 50, "variant": "caffe",
                                                    "output_stride": 8, "width": 0.125, "blocks": [1, 1, 1, 1]},
                  "rates": [1, 2]},
        "method": {"name": "supervised", "input": "image"},
        "train": {"iterations": 2, "progress": False, "ckpt_every": 0, "threads": 1},
        "eval": {"inference": {"class_filter": "none"}},
    }))
    assert main(["train", str(config)]) == 0
    capsys.readouterr()
    sets = "dark_zurich_val,nighttime_driving,dark_zurich:test"
    assert main(["eval", str(config), "--split", "test", "--datasets", sets, "--predictions", str(tmp_path / "pred"),
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)["datasets"]
    for name in ("dark_zurich_val", "nighttime_driving"):
        assert list(result[name]["per_class_iou"]) == list(CITYSCAPES_CLASSES)
    submission = Path(result["dark_zurich:test"]["predictions"])
    labels = np.asarray(Image.open(submission / "labelTrainIds" / "GOPR0364_frame_000001_rgb_anon.png"))
    assert labels.shape == (H, W) and labels.dtype == np.uint8 and labels.max() < 19
    same = np.asarray(Image.open(submission / "labelTrainIds_invalid" / "GOPR0364_frame_000001_rgb_anon.png"))
    assert (same == labels).all()
    confidence = cv2.imread(str(submission / "confidence" / "GOPR0364_frame_000001_rgb_anon.png"), -1)
    assert confidence.dtype == np.uint16 and confidence.shape == (H, W)
    assert main(["eval", str(config), "--datasets", "dark_zurich_test"]) == 1
    assert "has no ground truth; pass --predictions" in capsys.readouterr().err


def test_check_covers_voc_layout(tmp_path: Path, capsys):
    from darkseg.data.io import write_palette_png

    (tmp_path / "ImageSets/Segmentation").mkdir(parents=True)
    (tmp_path / "ImageSets/Segmentation/val.txt").write_text("a\nb\n")
    for sid, value in (("a", 15), ("b", 30)):
        _img(tmp_path / "JPEGImages" / f"{sid}.jpg")
        write_palette_png(tmp_path / "SegmentationClassAug" / f"{sid}.png", np.full((H, W), value, np.uint8))
    assert main(["data", "check", "voc", str(tmp_path), "--split", "val"]) == 1
    assert "SegmentationClassAug/b.png: mask values 30 outside 0..20" in capsys.readouterr().err
    write_palette_png(tmp_path / "SegmentationClassAug" / "b.png", np.full((H, W), 15, np.uint8))
    assert main(["data", "check", "voc", str(tmp_path), "--split", "val", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["class_pixels"]["person"] == 2 * H * W
