"""``darkseg synth`` end to end on tiny trees made here."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from darkseg.cli import main


def _picture(h: int = 30, w: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([100 + 80 * np.sin(xx / 7 + c) * np.cos(yy / 5) for c in range(3)], axis=-1)
    return np.clip(img + rng.normal(0, 10, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    (root / "sub").mkdir(parents=True)
    cv2.imwrite(str(root / "a.jpg"), _picture(seed=1))
    cv2.imwrite(str(root / "sub" / "b.png"), _picture(seed=2))
    cv2.imwrite(str(root / "grey.png"), _picture(seed=3)[:, :, 0])
    alpha = np.tile(np.arange(40, dtype=np.uint8)[None, :, None] * 6, (30, 1, 1))
    cv2.imwrite(str(root / "rgba.png"), np.concatenate([_picture(seed=4), alpha], axis=2))
    cv2.imwrite(str(root / "deep.png"), _picture(seed=5).astype(np.uint16) * 257)
    (root / "broken.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    (root / "notes.txt").write_text("not an image")
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_folder_in_folder_out_byte_identical(src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dst = tmp_path / "dst"
    assert main(["synth", str(src), str(dst), "--seed", "0", "--no-progress"]) == 0
    out = capsys.readouterr()
    assert "5 written" in out.out and "1 unreadable or unsupported skipped" in out.out
    assert "broken.jpg" in out.err
    assert "grey converted to RGB" in out.out and "alpha kept" in out.out and "16-bit kept" in out.out
    files = _files(dst)
    assert set(files) == {"a.jpg", "sub/b.png", "grey.png", "rgba.png", "deep.png",
                          "lowlight_config.json", "lowlight_params.jsonl"}
    assert files["a.jpg"][:2] == b"\xff\xd8" and files["sub/b.png"][:4] == b"\x89PNG"
    for name in ("a.jpg", "sub/b.png", "grey.png"):
        img = cv2.imread(str(dst / name), cv2.IMREAD_UNCHANGED)
        assert img.shape == (30, 40, 3) and img.dtype == np.uint8
        assert img.mean() < 0.8 * cv2.imread(str(src / name), cv2.IMREAD_COLOR).mean()
    rgba = cv2.imread(str(dst / "rgba.png"), cv2.IMREAD_UNCHANGED)
    assert rgba.shape == (30, 40, 4) and np.array_equal(rgba[:, :, 3], cv2.imread(str(src / "rgba.png"), -1)[:, :, 3])
    deep = cv2.imread(str(dst / "deep.png"), cv2.IMREAD_UNCHANGED)
    assert deep.dtype == np.uint16 and deep.shape == (30, 40, 3) and len(np.unique(deep)) > 256
    lines = [json.loads(line) for line in files["lowlight_params.jsonl"].decode().splitlines()]
    assert [line["path"] for line in lines] == ["a.jpg", "deep.png", "grey.png", "rgba.png", "sub/b.png"]
    assert lines[-1]["id"] == "sub/b" and {"gamma", "darkness", "shot", "read", "beta"} <= set(lines[0])

    again = tmp_path / "again"
    assert main(["synth", str(src), str(again), "--seed", "0", "--no-progress"]) == 0
    assert _files(again) == files
    assert main(["synth", str(src), str(tmp_path / "seed1"), "--seed", "1", "--no-progress"]) == 0
    assert _files(tmp_path / "seed1")["a.jpg"] != files["a.jpg"]


def test_resume_skips_finished_outputs(src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dst = tmp_path / "dst"
    assert main(["synth", str(src), str(dst), "--no-progress"]) == 0
    first = _files(dst)
    (dst / "sub" / "b.png").unlink()
    (dst / "a.jpg").write_bytes(b"kept")  # an existing output is not recomputed
    capsys.readouterr()
    assert main(["synth", str(src), str(dst), "--no-progress"]) == 0
    assert "1 written, 4 already present" in capsys.readouterr().out
    now = _files(dst)
    assert now["sub/b.png"] == first["sub/b.png"] and now["a.jpg"] == b"kept"
    assert now["lowlight_params.jsonl"] == first["lowlight_params.jsonl"]
    assert main(["synth", str(src), str(dst), "--seed", "3", "--no-progress"]) == 1  # other settings: refused
    assert "different seed or config" in capsys.readouterr().err


def test_two_workers_give_the_same_bytes(src: Path, tmp_path: Path) -> None:
    assert main(["synth", str(src), str(tmp_path / "one"), "--no-progress"]) == 0
    assert main(["synth", str(src), str(tmp_path / "two"), "--workers", "2", "--no-progress"]) == 0
    assert _files(tmp_path / "one") == _files(tmp_path / "two")


@pytest.mark.parametrize("where", ["src", "src/inner", "."])
def test_destination_overlapping_source_is_refused(
    where: str, src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _files(src)
    assert main(["synth", str(src), str(tmp_path / where), "--no-progress"]) == 1
    assert "SRC" in capsys.readouterr().err
    assert _files(src) == before


def test_voc_tree_darkens_only_jpegimages(tmp_path: Path) -> None:
    voc = tmp_path / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / sub).mkdir(parents=True)
    for i in range(2):
        cv2.imwrite(str(voc / "JPEGImages" / f"2007_00003{i}.jpg"), _picture(seed=i))
        cv2.imwrite(str(voc / "SegmentationClass" / f"2007_00003{i}.png"), np.zeros((30, 40), np.uint8))
    (voc / "ImageSets/Segmentation/train.txt").write_text("2007_000030\n2007_000031\n")
    dst = tmp_path / "dark"
    assert main(["synth", str(tmp_path / "VOCdevkit"), str(dst), "--no-progress"]) == 0
    assert set(_files(dst)) == {"VOC2012/JPEGImages/2007_000030.jpg", "VOC2012/JPEGImages/2007_000031.jpg",
                                "lowlight_config.json", "lowlight_params.jsonl"}
    ids = [json.loads(line)["id"] for line in (dst / "lowlight_params.jsonl").read_text().splitlines()]
    assert ids == ["2007_000030", "2007_000031"]


def test_overrides_preview_and_bad_options(src: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dst = tmp_path / "dst"
    args = ["synth", str(src), str(dst), "--no-progress", "--set", "gamma_range=[2, 2.1]", "--set", "noise=false"]
    assert main(args) == 0
    lines = [json.loads(line) for line in (dst / "lowlight_params.jsonl").read_text().splitlines()]
    assert all(2.0 <= line["gamma"] <= 2.1 and line["shot"] is None for line in lines)
    assert json.loads((dst / "lowlight_config.json").read_text())["config"]["noise"] is False
    preview = tmp_path / "preview.png"
    assert main(["synth", "--preview", str(src / "a.jpg"), str(preview)]) == 0
    assert cv2.imread(str(preview)).shape == (60, 80, 3)
    capsys.readouterr()
    assert main(["synth", str(src), str(tmp_path / "x"), "--set", "gama_range=[2,3]"]) == 1
    assert "gamma_range" in capsys.readouterr().err  # the error lists the valid keys
    assert main(["synth", str(src), str(tmp_path / "x"), "--set", "gamma_range=[3,2]"]) == 1
    assert "gamma_range must satisfy 0 < low <= high" in capsys.readouterr().err
    assert main(["synth", str(src)]) == 1
    assert "need SRC and DST" in capsys.readouterr().err
