"""``darkseg depth`` end to end with tiny random-weight Depth Anything, ZoeDepth and DPT-hybrid models."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from darkseg.cli import main
from darkseg.commands.depth import MODELS
from darkseg.depth import DEPTH_MODELS, DepthEstimator, estimate_tree
from darkseg.errors import DataError

transformers = pytest.importorskip("transformers")

SIZES = [(20, 30), (30, 20), (20, 30), (17, 23), (24, 24)]  # (H, W): mixed aspect ratios in one batch


def _processor(kind: str, size: int, keep_aspect: bool, multiple: int, mean: float | None) -> dict:
    """A preprocessor_config.json as the Hub ships it (standard class name, loaded through the PIL backend)."""
    m, s = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]) if mean is None else ([mean] * 3, [0.5] * 3)
    return {
        "image_processor_type": kind,
        "do_resize": True,
        "size": {"height": size, "width": size},
        "keep_aspect_ratio": keep_aspect,
        "ensure_multiple_of": multiple,
        "resample": 3,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": m,
        "image_std": s,
        "do_pad": kind.startswith("Zoe"),
    }


def _tiny(name: str) -> tuple[torch.nn.Module, dict]:
    t = transformers
    if name == "depth-anything-small":
        backbone = t.Dinov2Config(
            hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=32, image_size=28,
            patch_size=14, out_features=["stage1", "stage2", "stage3", "stage4"], reshape_hidden_states=False,
        )
        cfg = t.DepthAnythingConfig(
            backbone_config=backbone, reassemble_hidden_size=16, neck_hidden_sizes=[8, 8, 16, 16],
            fusion_hidden_size=8, head_hidden_size=8,
        )
        return t.DepthAnythingForDepthEstimation(cfg), _processor("DPTImageProcessor", 28, True, 14, None)
    if name == "zoedepth":
        backbone = t.BeitConfig(
            hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=32, image_size=32,
            patch_size=16, use_relative_position_bias=True, use_absolute_position_embeddings=False,
            reshape_hidden_states=False, out_features=["stage1", "stage2", "stage3", "stage4"],
        )
        cfg = t.ZoeDepthConfig(
            backbone_config=backbone, neck_hidden_sizes=[8, 8, 16, 16], fusion_hidden_size=8, num_relative_features=8,
            bottleneck_features=8, bin_embedding_dim=8, num_attractors=[4, 2, 2, 1],
            bin_configurations=[{"n_bins": 8, "min_depth": 1e-3, "max_depth": 10.0, "name": "nyu"}],
            num_patch_transformer_layers=1, patch_transformer_hidden_size=8, patch_transformer_intermediate_size=16,
            patch_transformer_num_attention_heads=2,
        )
        model = t.ZoeDepthForDepthEstimation(cfg)
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():  # random init leaves the metric head almost constant: spread its output
            for p in model.parameters():
                p.add_(torch.randn(p.shape, generator=gen) * 0.2)
        return model, _processor("ZoeDepthImageProcessor", 32, True, 16, 0.5)
    backbone = t.BitConfig(
        global_padding="same", layer_type="bottleneck", depths=[1, 1, 1], hidden_sizes=[8, 16, 32], embedding_size=8,
        out_features=["stage1", "stage2", "stage3"], embedding_dynamic_padding=True, num_groups=2,
    )
    cfg = t.DPTConfig(
        hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=32, image_size=32, patch_size=16,
        is_hybrid=True, backbone_config=backbone, backbone_featmap_shape=[1, 32, 2, 2],
        backbone_out_indices=[0, 1, 2, 3],
        neck_hidden_sizes=[8, 16, 16, 16], fusion_hidden_size=8, head_hidden_size=8, reassemble_factors=[1, 1, 1, 0.5],
    )
    return t.DPTForDepthEstimation(cfg), _processor("DPTImageProcessor", 32, False, 1, 0.5)


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.manual_seed(0)
    out = {}
    for name in ("depth-anything-small", "zoedepth", "dpt-midas"):
        model, proc = _tiny(name)
        folder = tmp_path_factory.mktemp(name)
        model.save_pretrained(folder)
        (folder / "preprocessor_config.json").write_text(json.dumps(proc))
        out[name] = folder
    return out


def _write_images(folder: Path, names: list[str]) -> None:
    rng = np.random.default_rng(0)
    for name, (h, w) in zip(names, SIZES):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        # a brightness ramp plus noise, so that the random models see structure
        ramp = np.linspace(0, 200, w)[None, :, None] + rng.integers(0, 55, (h, w, 3))
        cv2.imwrite(str(path), ramp.astype(np.uint8))


def _read16(path: Path) -> np.ndarray:
    depth = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert depth is not None and depth.dtype == np.uint16 and depth.ndim == 2
    return depth


def test_command_lists_every_registered_model() -> None:
    assert sorted(MODELS) == DEPTH_MODELS.names()


@pytest.mark.parametrize("model", ["depth-anything-small", "zoedepth", "dpt-midas"])
def test_depth_on_a_folder_end_to_end(model: str, weights: dict[str, Path], tmp_path: Path) -> None:
    src, dst = tmp_path / "imgs", tmp_path / "out"
    names = ["a.jpg", "b.png", "sub/c.jpg", "d.JPG", "e.png"]
    _write_images(src, names)
    argv = ["depth", str(src), str(dst), "--model", model, "--weights", str(weights[model]), "--batch-size", "3"]
    assert main([*argv, "--npy", "--device", "cpu"]) == 0
    for name, (h, w) in zip(names, SIZES):
        png = dst / Path(name).with_suffix(".png")
        depth = _read16(png)
        assert depth.shape == (h, w)
        assert depth.min() == 0 and depth.max() == 65535
        npy = np.load(png.with_suffix(".npy"))
        assert npy.dtype == np.float32 and npy.shape == (h, w) and npy.min() == 0 and npy.max() == 1
        np.testing.assert_array_equal(depth, np.round(npy * 65535).astype(np.uint16))
    assert not list(dst.rglob("*.tmp"))


def test_batching_does_not_change_the_maps(weights: dict[str, Path], tmp_path: Path) -> None:
    est = DepthEstimator("depth-anything-small", weights["depth-anything-small"], "cpu")
    _write_images(tmp_path, ["a.png", "b.png", "c.png"])
    imgs = [cv2.imread(str(tmp_path / n))[..., ::-1].copy() for n in ("a.png", "b.png", "c.png")]
    together = est(imgs)
    for img, depth in zip(imgs, together):
        np.testing.assert_allclose(est([img])[0], depth, atol=1e-5)


def test_zoedepth_padding_is_cropped_and_metric_depth_inverted(weights: dict[str, Path]) -> None:
    est = DepthEstimator("zoedepth", weights["zoedepth"], "cpu")
    h, w = 18, 32  # the processor reflect-pads int(sqrt(side / 2) * 3) pixels: 9 and 12
    metric = torch.linspace(1.0, 4.0, h * w).reshape(h, w)
    padded = torch.nn.functional.pad(metric[None], (12, 12, 9, 9), value=100.0)[0]
    expected = 1 / metric
    expected = (expected - expected.min()) / (expected.max() - expected.min())
    torch.testing.assert_close(est._postprocess(padded, (h, w)), expected)


def test_resume_skips_finished_files(weights: dict[str, Path], tmp_path: Path) -> None:
    src, dst = tmp_path / "imgs", tmp_path / "out"
    _write_images(src, ["a.jpg", "b.jpg", "c.jpg"])
    calls: list[int] = []

    def fake(images: list[np.ndarray]) -> list[np.ndarray]:
        calls.append(len(images))
        return [np.linspace(0, 1, i.shape[0] * i.shape[1], dtype=np.float32).reshape(i.shape[:2]) for i in images]

    first = estimate_tree(src, dst, fake, batch_size=2)
    assert (first.written, first.skipped, calls) == (3, 0, [2, 1])
    (dst / "b.png").unlink()
    stamp = (dst / "a.png").stat().st_mtime_ns
    second = estimate_tree(src, dst, fake, batch_size=2)
    assert (second.written, second.skipped, calls[2:]) == (1, 2, [1])
    assert (dst / "a.png").stat().st_mtime_ns == stamp
    third = estimate_tree(src, dst, fake, npy=True)  # .npy asked for now: every image is redone
    assert (third.written, third.skipped) == (3, 0)
    assert main(["depth", str(src), str(dst), "--model", "dpt-midas", "--weights", str(weights["dpt-midas"])]) == 0


def test_voc_root_reads_the_dark_images(tmp_path: Path) -> None:
    root = tmp_path / "VOC"
    _write_images(root / "JPEGImages", ["2007_000032.jpg"])
    _write_images(root / "dark", ["2007_000032.png", "2007_000033.png"])
    seen: list[tuple[int, ...]] = []

    def fake(images: list[np.ndarray]) -> list[np.ndarray]:
        seen.extend(img.shape for img in images)
        return [np.zeros(img.shape[:2], np.float32) for img in images]

    summary = estimate_tree(root, root / "depth", fake, suffix="_depth")
    assert summary.written == 2 and seen == [(20, 30, 3), (30, 20, 3)]
    assert sorted(p.name for p in (root / "depth").iterdir()) == ["2007_000032_depth.png", "2007_000033_depth.png"]
    assert estimate_tree(root, tmp_path / "normal", fake, images="JPEGImages").written == 1
    with pytest.raises(DataError, match="must not be the image folder"):
        estimate_tree(root, root / "dark" / "depth", fake)


def test_unreadable_image_is_reported_and_skipped(tmp_path: Path) -> None:
    src = tmp_path / "imgs"
    _write_images(src, ["a.jpg"])
    (src / "broken.jpg").write_bytes(b"not a jpeg")
    summary = estimate_tree(src, tmp_path / "out", lambda imgs: [np.zeros(i.shape[:2], np.float32) for i in imgs])
    assert summary.written == 1 and [p.name for p in summary.failed] == ["broken.jpg"]


def test_missing_or_wrong_weights_say_how_to_get_them(
    weights: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "imgs"
    _write_images(src, ["a.jpg"])
    base = ["depth", str(src), str(tmp_path / "out")]
    assert main([*base, "--model", "depth-anything-small", "--weights", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "no such directory" in err and "LiheYoung/depth-anything-small-hf" in err and "config.json" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([*base, "--model", "zoedepth", "--weights", str(empty)]) == 1
    err = capsys.readouterr().err
    assert "missing config.json, preprocessor_config.json, model weights" in err and "Intel/zoedepth-nyu-kitti" in err
    assert main([*base, "--model", "zoedepth", "--weights", str(weights["dpt-midas"])]) == 1
    err = capsys.readouterr().err
    assert "model_type 'dpt'" in err and "'zoedepth'" in err
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    for f in weights["dpt-midas"].iterdir():
        (corrupt / f.name).write_bytes(b"garbage" if f.suffix == ".safetensors" else f.read_bytes())
    assert main([*base, "--model", "dpt-midas", "--weights", str(corrupt)]) == 1
    err = capsys.readouterr().err
    assert "cannot load DPTForDepthEstimation" in err and "Intel/dpt-hybrid-midas" in err
    assert not (tmp_path / "out").exists()
