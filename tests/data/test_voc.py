"""VOC-layout reader on tiny fixture trees: views, depth variants, cls_labels, VOC→LIS mapping, bad input."""

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from darkseg.data.io import write_palette_png
from darkseg.data.lis import LIS_CLASSES
from darkseg.data.transforms import AugmentConfig, PairedTransform
from darkseg.data.voc import VOCDataset
from darkseg.errors import ConfigError, DataError

IDS = ["2007_000032", "2007_000039", "2008_000002"]
H, W = 30, 40
ALL = ("image", "dark", "depth", "mask", "labels")


def _mask(k: int) -> np.ndarray:
    mask = np.zeros((H, W), np.uint8)
    mask[5:15, 5:20] = (2, 7, 15)[k]  # bicycle, car, person
    mask[20:25, 10:30] = 20 if k == 0 else 0  # tvmonitor in the first image
    mask[0, :] = 255
    return mask


def make_voc(root: Path, ext: str = ".jpg", depth_name: str = "{id}_depth.png", split: str = "train") -> Path:
    """A VOC 2012 + SBD tree: JPEGImages, dark, depth, SegmentationClassAug (palette PNG), ImageSets list."""
    rng = np.random.default_rng(0)
    for folder in ("JPEGImages", "dark", "depth", "ImageSets/Segmentation"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for k, sid in enumerate(IDS):
        image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / "JPEGImages" / f"{sid}{ext}")
        Image.fromarray(image // 8).save(root / "dark" / f"{sid}{ext}")
        write_palette_png(root / "SegmentationClassAug" / f"{sid}.png", _mask(k))
        depth = np.tile(np.linspace(0, 255, W).astype(np.uint8), (H, 1))
        cv2.imwrite(str(root / "depth" / depth_name.format(id=sid)), np.repeat(depth[..., None], 3, 2))
    (root / "ImageSets/Segmentation" / f"{split}.txt").write_text("\n".join(IDS) + "\n")
    return root


def test_all_views(tmp_path: Path):
    ds = VOCDataset(make_voc(tmp_path), "train", ALL)
    assert len(ds) == 3 and ds.num_classes == 21 and ds.ids == IDS
    s = ds.load(0)
    assert s["id"] == IDS[0]
    assert s["image"].shape == s["dark"].shape == (H, W, 3) and s["image"].dtype == np.uint8
    assert s["depth"].shape == (H, W) and s["depth"].dtype == np.float32
    assert 0 <= s["depth"].min() and s["depth"].max() <= 1
    assert (s["mask"] == _mask(0)).all()
    assert s["labels"].dtype == np.float32 and np.flatnonzero(s["labels"]).tolist() == [1, 19]
    assert set(VOCDataset(tmp_path, "train", ("mask",)).load(1)) == {"id", "mask"}


def test_scenes_layout_png_with_custom_classes(tmp_path: Path):
    make_voc(tmp_path, ext=".png", depth_name="{id}.png", split="test")
    names = ["background", *(f"c{i}" for i in range(1, 21))]
    ds = VOCDataset(tmp_path, "test", ALL, class_names=names)
    assert ds.class_names[1] == "c1" and ds.load(2)["image"].shape == (H, W, 3)
    with pytest.raises(DataError, match="2007_000032.png: mask values 20 outside 0..8"):
        VOCDataset(tmp_path, "test", ("mask",), class_names=LIS_CLASSES).load(0)


def test_list_file_with_paths(tmp_path: Path):
    make_voc(tmp_path)
    lines = [f"/JPEGImages/{i}.jpg /SegmentationClassAug/{i}.png" for i in IDS]
    (tmp_path / "ImageSets/Segmentation/train_aug.txt").write_text("\n".join(lines) + "\n\n")
    assert VOCDataset(tmp_path, "train_aug", ("mask",)).ids == IDS


def test_depth_npy_and_resize(tmp_path: Path):
    make_voc(tmp_path)
    for p in (tmp_path / "depth").iterdir():
        p.unlink()
    np.save(tmp_path / "depth" / f"{IDS[0]}.npy", np.full((H // 2, W // 2), 3.0))
    ds = VOCDataset(tmp_path, "train", ("image", "depth"))
    with pytest.warns(UserWarning, match="resizing depth maps"):
        depth = ds.load(0)["depth"]
    assert depth.shape == (H, W) and (depth == 0).all()  # constant metric depth, min-max normalised
    np.save(tmp_path / "depth" / f"{IDS[1]}.npy", np.zeros((H, W + 10)))
    with pytest.raises(DataError, match=f"{IDS[1]}.npy: depth size 50x30 has a different aspect ratio"):
        ds.load(1)
    with pytest.raises(DataError, match=f"{IDS[2]}_depth.png: depth map not found"):
        ds.load(2)


def test_cls_labels_int_and_str_keys_and_mismatch(tmp_path: Path):
    make_voc(tmp_path)
    table = {2007000032: np.eye(20)[[1, 19]].sum(0), "2007_000039": np.eye(20)[6], 2008000002: np.eye(20)[0]}
    np.save(tmp_path / "cls_labels.npy", table)
    ds = VOCDataset(tmp_path, "train", ("labels",), cls_labels=tmp_path / "cls_labels.npy")
    assert np.flatnonzero(ds.load(2)["labels"]).tolist() == [0]  # from the file, masks not read
    ds = VOCDataset(tmp_path, "train", ("mask", "labels"), cls_labels=tmp_path / "cls_labels.npy")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert np.flatnonzero(ds.load(0)["labels"]).tolist() == [1, 19]
        assert np.flatnonzero(ds.load(2)["labels"]).tolist() == [0]  # file wins over the mask (person)
        ds.load(1)
    assert len(caught) == 1 and "2008_000002" in str(caught[0].message) and ds.label_mismatches == ["2008_000002"]
    with pytest.warns(UserWarning, match=r"labels of 1 of 3 ids differ from their masks \(e.g. 2008_000002\)"):
        assert ds.check_labels() == ["2008_000002"]
    strict = VOCDataset(tmp_path, "train", ALL, cls_labels=tmp_path / "cls_labels.npy", label_mismatch="error")
    with pytest.raises(DataError, match="cls_labels.npy: labels of '2008_000002' differ from its mask"):
        strict.load(2)
    with pytest.raises(DataError, match="1 of 3 ids"):
        strict.check_labels()
    np.save(tmp_path / "short.npy", {"2007_000032": np.ones(20)})
    with pytest.raises(DataError, match="short.npy: no labels for id '2007_000039'"):
        VOCDataset(tmp_path, "train", ("labels",), cls_labels=tmp_path / "short.npy").load(1)


def test_voc8_to_lis(tmp_path: Path):
    make_voc(tmp_path)
    ds = VOCDataset(tmp_path, "train", ("mask", "labels"), class_map="voc8_to_lis")
    assert ds.class_names == LIS_CLASSES and ds.num_classes == 9
    m0, m2 = ds.load(0), ds.load(2)
    assert m0["mask"][10, 10] == 1 and m0["mask"][22, 20] == 8  # bicycle 2 -> 1, tvmonitor 20 -> 8
    assert ds.load(1)["mask"][10, 10] == 2  # car 7 -> 2
    assert m2["mask"][10, 10] == 255 and not m2["labels"].any()  # person -> ignore
    assert np.flatnonzero(m0["labels"]).tolist() == [0, 7]
    np.save(tmp_path / "cls.npy", {i: np.eye(20)[[1, 14]].sum(0) for i in IDS})  # bicycle + person
    labels = VOCDataset(tmp_path, "train", ("labels",), class_map="voc8_to_lis", cls_labels=tmp_path / "cls.npy")
    assert np.flatnonzero(labels.load(0)["labels"]).tolist() == [0]
    with pytest.raises(ConfigError, match="voc8_to_lis"):
        VOCDataset(tmp_path, "train", ("mask",), class_map="voc8_to_lis", class_names=LIS_CLASSES)
    with pytest.raises(ConfigError, match="unknown 'nope'"):
        VOCDataset(tmp_path, "train", ("mask",), class_map="nope")


def test_bad_input(tmp_path: Path):
    make_voc(tmp_path)
    (tmp_path / "JPEGImages" / f"{IDS[0]}.jpg").unlink()
    data = (tmp_path / "dark" / f"{IDS[1]}.jpg").read_bytes()
    (tmp_path / "dark" / f"{IDS[1]}.jpg").write_bytes(data[: len(data) // 2])
    write_palette_png(tmp_path / "SegmentationClassAug" / f"{IDS[2]}.png", np.zeros((H, W + 1), np.uint8))
    ds = VOCDataset(tmp_path, "train", ALL)
    with pytest.raises(DataError, match=f"JPEGImages/{IDS[0]}.jpg: file for the 'image' view not found"):
        ds[0]
    with pytest.raises(DataError, match=f"dark/{IDS[1]}.jpg: unreadable or truncated image"):
        ds[1]
    with pytest.raises(DataError, match=f"{IDS[2]}.png: size 41x30 differs from {IDS[2]}.jpg"):
        ds[2]
    bad = _mask(1)
    bad[3, 3] = 21
    write_palette_png(tmp_path / "SegmentationClassAug" / f"{IDS[1]}.png", bad)
    with pytest.raises(DataError, match=f"{IDS[1]}.png: mask values 21 outside 0..20"):
        VOCDataset(tmp_path, "train", ("labels",))[1]
    (tmp_path / "ImageSets/Segmentation/empty.txt").write_text("\n")
    with pytest.raises(DataError, match="empty.txt: list file is empty"):
        VOCDataset(tmp_path, "empty", ("mask",))
    with pytest.raises(DataError, match="val.txt: list file not found"):
        VOCDataset(tmp_path, "val", ("mask",))
    with pytest.raises(DataError, match="nodark: folder for the 'dark' view not found"):
        VOCDataset(tmp_path, "train", ("dark",), dark_dir="nodark")
    with pytest.raises(ConfigError, match="data.views"):
        VOCDataset(tmp_path, "train", ("image", "rgb"))


def test_getitem_seeds(tmp_path: Path):
    make_voc(tmp_path)
    aug = AugmentConfig(crop_size=16, scale_mode="relative", scale_range=(0.5, 1.5))
    ds = VOCDataset(tmp_path, "train", ALL, transform=PairedTransform(aug, (0.5,) * 3, (0.25,) * 3))
    a, b, c = ds[(1, 7)], ds[(1, 7)], ds[(1, 8)]
    assert a["image"].shape == (3, 16, 16) and a["mask"].dtype.is_floating_point is False
    assert all((a[k] == b[k]).all() for k in ("image", "dark", "depth", "mask", "labels"))
    assert not (a["image"] == c["image"]).all()
    assert (ds[1]["image"] == ds[(1, None)]["image"]).all() and (ds[-2]["image"] == ds[1]["image"]).all()
    with pytest.raises(IndexError):
        ds[3]


class _RunsCode:
    """A pickled object whose unpickling would call os.system."""

    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def test_cls_labels_file_cannot_run_code(tmp_path):
    from darkseg.data.voc import read_cls_labels
    from darkseg.errors import DataError

    path = tmp_path / "cls_labels.npy"
    np.save(path, np.array({"2007_000032": _RunsCode()}, dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="not allowed in a label file"):
        read_cls_labels(path, 20)
