"""Day→night alignment: recovery of a known camera map, failure reporting and exclusion, cache reuse, warping."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from darkseg.align.estimate import AlignConfig, align_pair, flow_error, homography_flow, mask_outside, warp
from darkseg.align.warp import warp_by_flow
from darkseg.cli import main
from darkseg.data.config import DataConfig
from darkseg.data.registry import build_dataset

H, W = 96, 128
TRUE = np.array([[1 / 1.05, 0, 3.0], [0, 1 / 1.05, -2.0]])  # night pixel -> day pixel


def _day(seed: int = 0) -> np.ndarray:
    """A textured day image: random rectangles of random colours on a smooth background."""
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.integers(60, 200, (6, 8, 3)).astype(np.uint8), (W, H), interpolation=cv2.INTER_CUBIC)
    for _ in range(40):
        x, y = rng.integers(0, W - 10), rng.integers(0, H - 10)
        cv2.rectangle(img, (int(x), int(y)), (int(x + rng.integers(4, 20)), int(y + rng.integers(4, 20))),
                      rng.integers(0, 256, 3).tolist(), -1)
    return img


def _night(day: np.ndarray, seed: int = 0) -> np.ndarray:
    """The day scene seen through TRUE, darkened to a quarter, with sensor-like noise."""
    m = np.vstack([TRUE, [0, 0, 1]])
    seen = cv2.warpAffine(day, m[:2], (W, H), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT)
    noise = np.random.default_rng(seed).normal(0, 3, seen.shape)
    return np.clip(seen * 0.25 + noise, 0, 255).astype(np.uint8)


def test_recovers_a_known_zoom_and_shift():
    day = _day()
    result = align_pair(_night(day), day, AlignConfig(model="similarity"))
    assert result.ok, result.reason
    s = result.scale
    true = mask_outside(homography_flow(np.diag([s, s, 1]) @ np.vstack([TRUE, [0, 0, 1]]) @ np.diag([1 / s, 1 / s, 1]),
                                        result.fine.shape[:2]), result.fine.shape[:2])
    coarse = mask_outside(homography_flow(result.homography, true.shape[:2]), true.shape[:2])
    assert flow_error(coarse, true)["epe"] / s < 0.5
    assert flow_error(result.fine, true)["epe"] / s < 1.5
    assert result.quality["photo_error_coarse"] < result.quality["photo_error_identity"]


def test_warp_by_flow_matches_opencv_remap():
    rng = np.random.default_rng(0)
    image = rng.random((9, 11, 3)).astype(np.float32)
    flow = rng.uniform(-3, 3, (9, 11, 2)).astype(np.float32)
    flow[2, 3] = np.nan
    expected, valid = warp(image, flow)
    got, got_valid = warp_by_flow(torch.from_numpy(image).permute(2, 0, 1)[None],
                                  torch.from_numpy(flow).permute(2, 0, 1)[None])
    assert torch.equal(got_valid[0], torch.from_numpy(valid)) and not valid[2, 3]
    assert np.allclose(got[0].permute(1, 2, 0).numpy()[valid], expected[valid], atol=1e-5)
    assert (got[0].permute(1, 2, 0).numpy()[~valid] == 0).all()


def _folder(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "dataset.yaml").write_text(yaml.safe_dump({"classes": ["a", "b"]}))
    truth = {}
    for k in range(3):
        day = _day(k)
        night = _night(day, k) if k != 1 else np.zeros_like(day)  # pair 1: a black night image cannot be aligned
        for folder, img in (("images", night), ("day", day)):
            (root / folder / "night").mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(root / folder / "night" / f"p{k}.png")
        truth[f"p{k}"] = TRUE.tolist()
    (root / "align_truth").mkdir()
    (root / "align_truth" / "night.json").write_text(json.dumps(truth))
    return root


def test_cli_reports_failures_caches_and_datasets_exclude_them(tmp_path: Path, capsys):
    root = _folder(tmp_path / "pairs")
    args = ["align", "folder", str(root), "--split", "night", "--model", "similarity", "--json"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["pairs"] == 3 and summary["aligned"] == 2 and list(summary["failed_pairs"]) == ["p1"]
    assert "features" in summary["failed_pairs"]["p1"] or "matches" in summary["failed_pairs"]["p1"]
    assert summary["mean"]["epe_coarse"] < 0.5 < summary["mean"]["epe_identity"]
    out = root / "align" / "night"
    assert (out / "preview.png").is_file() and (out / "pairs" / "p0.npz").is_file()
    stamp = (out / "pairs" / "p0.npz").stat().st_mtime_ns
    assert main(args) == 0  # cached: nothing recomputed
    assert (out / "pairs" / "p0.npz").stat().st_mtime_ns == stamp
    capsys.readouterr()
    assert main(["align", "folder", str(root), "--split", "night", "--json"]) == 1  # other settings: refused
    assert "made with other settings" in capsys.readouterr().err
    ds = build_dataset(DataConfig(dataset="folder", root=str(root)), "night", ("image", "day", "flow"))
    assert ds.ids == ["p0", "p2"]
    assert ds.load(0)["flow"].shape == (H, W, 2)


def test_flow_view_without_alignment_says_what_to_run(tmp_path: Path):
    from darkseg.errors import DataError

    root = _folder(tmp_path / "pairs")
    with pytest.raises(DataError, match="no alignment report; run 'darkseg align'"):
        build_dataset(DataConfig(dataset="folder", root=str(root)), "night", ("image", "flow"))


def test_inconsistent_fine_flow_falls_back_to_the_homography():
    from darkseg.align.estimate import consistent

    flow = np.zeros((6, 8, 2), np.float32)
    flow[..., 0] = 2.0
    back = -flow
    back[:, :4] = 0.0  # day pixels 0..3 do not map back: night pixels 0..1 (-> day 2..3) are inconsistent
    fallback = np.full_like(flow, 7.0)
    out, kept = consistent(flow, back, fallback, 0.5)
    assert (out[:, :2] == 7.0).all() and (out[:, 2:6] == flow[:, 2:6]).all()
    assert (out[:, 6:] == 7.0).all()  # their day pixel is outside the image
    assert kept == pytest.approx(4 / 8)
