"""Image, mask and depth reading: formats, conversions and one-line DataErrors for bad files."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from darkseg.data.io import VOC_CLASSES, VOC_PALETTE, find_file, read_depth, read_image, read_mask, write_palette_png
from darkseg.errors import DataError


def test_voc_classes_and_palette():
    assert len(VOC_CLASSES) == 21 and VOC_CLASSES[0] == "background" and VOC_CLASSES[20] == "tvmonitor"
    assert VOC_PALETTE[0].tolist() == [0, 0, 0]
    assert VOC_PALETTE[1].tolist() == [128, 0, 0]
    assert VOC_PALETTE[15].tolist() == [192, 128, 128]
    assert VOC_PALETTE[255].tolist() == [224, 224, 192]


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P"])
def test_read_image_converts_to_rgb(tmp_path: Path, mode: str):
    rgb = np.random.default_rng(0).integers(0, 256, (12, 17, 3), dtype=np.uint8)
    Image.fromarray(rgb).convert(mode).save(tmp_path / "x.png")
    image = read_image(tmp_path / "x.png")
    assert image.shape == (12, 17, 3) and image.dtype == np.uint8
    if mode in ("RGB", "RGBA"):
        assert (image == rgb).all()


def test_read_image_16bit_grey(tmp_path: Path):
    cv2.imwrite(str(tmp_path / "g.png"), np.full((5, 6), 65535, np.uint16))
    assert (read_image(tmp_path / "g.png") == 255).all()


def test_truncated_and_garbage_images_raise(tmp_path: Path):
    rgb = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "x.jpg", quality=95)
    data = (tmp_path / "x.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    for name in ("cut.jpg", "junk.png", "missing.jpg"):
        with pytest.raises(DataError, match=name):
            read_image(tmp_path / name)


def test_mask_palette_grey_and_colour(tmp_path: Path):
    mask = np.random.default_rng(1).integers(0, 21, (9, 11)).astype(np.uint8)
    mask[0] = 255
    write_palette_png(tmp_path / "sub" / "m.png", mask)
    assert Image.open(tmp_path / "sub" / "m.png").mode == "P"
    assert (read_mask(tmp_path / "sub" / "m.png") == mask).all()
    Image.fromarray(mask).save(tmp_path / "g.png")
    assert (read_mask(tmp_path / "g.png") == mask).all()
    Image.fromarray(VOC_PALETTE[mask]).save(tmp_path / "rgb.png")
    with pytest.raises(DataError, match="rgb.png: mask has colour mode"):
        read_mask(tmp_path / "rgb.png")


def test_depth_png_8_16_bit_and_channels(tmp_path: Path):
    ramp = np.tile(np.arange(256, dtype=np.uint8), (4, 1))
    cv2.imwrite(str(tmp_path / "d8.png"), ramp)
    cv2.imwrite(str(tmp_path / "d16.png"), ramp.astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "d3.png"), np.repeat(ramp[..., None], 3, 2))
    for name in ("d8.png", "d16.png", "d3.png"):
        depth = read_depth(tmp_path / name)
        assert depth.dtype == np.float32 and depth.shape == (4, 256)
        np.testing.assert_allclose(depth, ramp / 255.0, atol=1e-6)


def test_depth_inferno_rendering_is_inverted(tmp_path: Path):
    ramp = np.tile(np.arange(256, dtype=np.uint8), (4, 1))
    cv2.imwrite(str(tmp_path / "inferno.png"), cv2.applyColorMap(ramp, cv2.COLORMAP_INFERNO))
    np.testing.assert_allclose(read_depth(tmp_path / "inferno.png"), ramp / 255.0, atol=1e-6)
    cv2.imwrite(str(tmp_path / "noise.png"), np.random.default_rng(0).integers(0, 256, (20, 20, 3), dtype=np.uint8))
    with pytest.raises(DataError, match="noise.png: depth map channels differ"):
        read_depth(tmp_path / "noise.png")


def test_depth_npy(tmp_path: Path):
    unit = np.random.default_rng(0).random((1, 5, 7)).astype(np.float32)
    np.save(tmp_path / "unit.npy", unit)
    np.testing.assert_array_equal(read_depth(tmp_path / "unit.npy"), unit[0])
    np.save(tmp_path / "metric.npy", np.array([[2.0, 4.0], [6.0, 10.0]]))
    np.testing.assert_allclose(read_depth(tmp_path / "metric.npy"), [[0.0, 0.25], [0.5, 1.0]])
    np.save(tmp_path / "nan.npy", np.array([[np.nan, 1.0]]))
    with pytest.raises(DataError, match="nan.npy: depth map contains NaN"):
        read_depth(tmp_path / "nan.npy")
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY garbage")
    for name in ("bad.npy", "none.png"):
        with pytest.raises(DataError, match=name):
            read_depth(tmp_path / name)


def test_find_file_order(tmp_path: Path):
    (tmp_path / "a.png").touch()
    (tmp_path / "a.jpg").touch()
    assert find_file(tmp_path, ["a"], (".jpg", ".png")) == tmp_path / "a.jpg"
    assert find_file(tmp_path, ["b", "a"], (".png",)) == tmp_path / "a.png"
    assert find_file(tmp_path, ["c"], (".png",)) is None
