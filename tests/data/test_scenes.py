"""The procedural ``scenes`` benchmark: determinism, layout, labels, depth/occlusion, pairs, cache, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from darkseg.cli import main
from darkseg.data import scenes_render as R
from darkseg.data.io import VOC_PALETTE
from darkseg.data.scenes import (
    MARKER,
    SCENES_CLASSES,
    ScenesConfig,
    ensure_scenes,
    generate_scenes,
    read_meta,
)
from darkseg.errors import DataError

TINY = ScenesConfig(size=48, n_train=12, n_val=3, n_test=2, n_pairs_train=4, n_pairs_val=2, seed=3, workers=1)
PRIORS = np.asarray([s[1] for s in R.CLASS_SPECS]) / sum(s[1] for s in R.CLASS_SPECS)


def halve(images: torch.Tensor, seeds: list[int]) -> torch.Tensor:
    """A trivial deterministic darkener."""
    return images * 0.5


def noisy(images: torch.Tensor, seeds: list[int]) -> torch.Tensor:
    """Half brightness plus seeded Gaussian noise of std 0.1."""
    gen = torch.Generator().manual_seed(seeds[0])
    return images * 0.5 + 0.1 * torch.randn(images.shape, generator=gen)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_scenes(tmp_path_factory.mktemp("scenes") / "out", TINY, progress=False)


def ids(root: Path, split: str) -> list[str]:
    return (root / "ImageSets" / "Segmentation" / f"{split}.txt").read_text().split()


def mask(root: Path, image_id: str) -> np.ndarray:
    return np.array(Image.open(root / "SegmentationClassAug" / f"{image_id}.png"))


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_voc_layout(tiny: Path) -> None:
    assert [len(ids(tiny, s)) for s in ("train", "val", "test")] == [12, 3, 2]
    for image_id in ids(tiny, "train") + ids(tiny, "test"):
        image = cv2.imread(str(tiny / "JPEGImages" / f"{image_id}.png"))
        dark = cv2.imread(str(tiny / "dark" / f"{image_id}.png"))
        depth = cv2.imread(str(tiny / "depth" / f"{image_id}.png"), cv2.IMREAD_UNCHANGED)
        png = Image.open(tiny / "SegmentationClassAug" / f"{image_id}.png")
        assert image.shape == dark.shape == (48, 48, 3)
        assert dark.mean() < image.mean()
        assert depth.dtype == np.uint16 and depth.min() == 0 and depth.max() == 65535
        assert png.mode == "P" and png.getpalette()[:27] == VOC_PALETTE[:9].reshape(-1).tolist()
        assert set(np.unique(np.array(png))) <= set(range(len(SCENES_CLASSES))) | {255}
    for side in ("day", "night"):
        assert len(ids(tiny / "pairs" / side, "train")) == 4 and len(ids(tiny / "pairs" / side, "val")) == 2
    meta = read_meta(tiny)
    assert meta is not None and meta["classes"] == list(SCENES_CLASSES) and meta["config"] == TINY.identity()
    assert meta["stats"]["train"]["images"] == 12 and "pairs/night/val" in meta["stats"]


def test_masks_consistent_with_labels_and_stats(tiny: Path) -> None:
    image_counts = np.zeros(len(SCENES_CLASSES) - 1)
    for image_id in ids(tiny, "train"):
        m = mask(tiny, image_id)
        present = [c for c in np.unique(m) if c not in (0, 255)]
        assert present, f"{image_id} has no object"
        assert all((m == c).sum() >= R.min_pixels(48) for c in present)
        image_counts[np.asarray(present) - 1] += 1
    freq = read_meta(tiny)["stats"]["train"]["image_freq"]  # type: ignore[index]
    assert [freq[c] for c in SCENES_CLASSES[1:]] == pytest.approx(image_counts / 12, abs=1e-4)


def test_pairs_aligned_up_to_shift(tiny: Path) -> None:
    shifts = json.loads((tiny / "pairs" / "shifts.json").read_text())
    day, night = tiny / "pairs" / "day", tiny / "pairs" / "night"
    for image_id in ids(day, "train") + ids(day, "val"):
        dx, dy = shifts[image_id]
        assert max(abs(dx), abs(dy)) <= TINY.max_shift
        d, n = mask(day, image_id), mask(night, image_id)
        # night pixel (x, y) shows day pixel (x + dx, y + dy)
        ys, xs = np.mgrid[0:48, 0:48]
        ok = (xs + dx >= 0) & (xs + dx < 48) & (ys + dy >= 0) & (ys + dy < 48)
        dn = d[np.clip(ys + dy, 0, 47), np.clip(xs + dx, 0, 47)]
        both = ok & (dn != 255) & (n != 255)
        assert (dn[both] == n[both]).mean() > 0.99
        day_rgb = cv2.imread(str(day / "JPEGImages" / f"{image_id}.png"))
        night_rgb = cv2.imread(str(night / "JPEGImages" / f"{image_id}.png"))
        assert night_rgb.mean() < day_rgb.mean()


def test_depth_consistent_with_occlusion() -> None:
    """Where a layer is covered by another, the covering layer is nearer; depth is that of the visible layer."""
    checked = 0
    for i in range(30):
        rng = np.random.default_rng([7, i])
        scene, out = R.make_scene(rng, 64, 0, PRIORS, ignore_edges=False)
        raised = [lay for lay in scene.layers if lay.inv_depth is not None]
        for k, lay in enumerate(raised):
            covered = (R.coverage(lay, (64, 64), 0) > 0.99) & (out.winner != k)
            if covered.any():
                checked += 1
                assert (out.inv_depth[covered] > lay.inv_depth).all()
        visible = out.winner >= 0
        depths = np.asarray([lay.inv_depth for lay in raised])
        assert np.allclose(out.inv_depth[visible], depths[out.winner[visible]])
    assert checked > 5


def test_occluder_nearer_than_occluded_neighbourhood() -> None:
    """A hand-built scene: a ring in front of a disc; the ring's pixels are nearer than the disc's visible ones."""
    rng = np.random.default_rng(0)
    scene = R.sample_scene(rng, 64, 0, PRIORS, 1)
    t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    circle = np.stack([np.cos(t), np.sin(t)], 1)
    look = dict(angle=0.0, colour=np.full(3, 0.5, np.float32), texture="flat", period=4.0, amp=0.0)
    disc = R.Layer(circle * 16 + 28, [], (28, 28), 16, label=1, inv_depth=0.5, **look)
    ring = R.Layer(circle * 14 + 40, [circle * 7 + 40], (40, 40), 14, label=2, inv_depth=0.8, **look)
    scene.layers = [disc, ring]
    out = R.render(scene, rng, 0, ignore_edges=True)
    assert (out.mask == 1).sum() > 200 and (out.mask == 2).sum() > 200
    assert out.mask[36, 36] == 1  # the disc shows through the ring's hole
    assert out.inv_depth[out.mask == 2].min() > out.inv_depth[out.mask == 1].max()


def test_class_frequencies_not_uniform() -> None:
    counts = np.zeros(len(R.CLASS_SPECS))
    for i in range(400):
        scene = R.sample_scene(np.random.default_rng([1, i]), 96, 0, PRIORS, None)
        for lay in scene.layers:
            counts[lay.label - 1] += lay.label > 0
    assert counts.min() > 0 and counts.max() > 2 * counts.min()


def test_deterministic_bytes_and_seed_changes(tmp_path: Path) -> None:
    cfg = TINY.model_copy(update={"n_train": 4, "n_val": 1, "n_test": 0, "n_pairs_train": 2, "n_pairs_val": 0})
    a = files(generate_scenes(tmp_path / "a", cfg, progress=False, darken=halve))
    b = files(generate_scenes(tmp_path / "b", cfg, progress=False, darken=halve))
    assert a == b and len(a) > 20
    c = files(generate_scenes(tmp_path / "c", cfg.model_copy(update={"seed": 4}), progress=False, darken=halve))
    assert a["JPEGImages/train_00000.png"] != c["JPEGImages/train_00000.png"]


def test_worker_pool_gives_same_files(tmp_path: Path) -> None:
    cfg = TINY.model_copy(update={"n_train": 20, "n_val": 1, "n_test": 0, "n_pairs_train": 0, "n_pairs_val": 0})
    inline = files(generate_scenes(tmp_path / "one", cfg, progress=False))
    pooled = files(generate_scenes(tmp_path / "two", cfg.model_copy(update={"workers": 2}), progress=False))
    assert inline == pooled


def test_unpicklable_darkener_refused_with_workers(tmp_path: Path) -> None:
    cfg = TINY.model_copy(update={"n_train": 20, "n_val": 1, "n_test": 0, "n_pairs_train": 0, "workers": 2})
    with pytest.raises(TypeError, match="picklable"):
        generate_scenes(tmp_path / "x", cfg, progress=False, darken=lambda images, seeds: images)


def test_dark_binning_lowers_noise_not_brightness(tmp_path: Path) -> None:
    """Binning b runs the darkener at b× resolution and area-averages: noise std / b, same clean image."""
    cfg = TINY.model_copy(update={"n_train": 2, "n_val": 1, "n_test": 0, "n_pairs_train": 0, "n_pairs_val": 0})
    residual = []
    for b in (1, 2):
        root = generate_scenes(tmp_path / str(b), cfg.model_copy(update={"dark_binning": b}), False, noisy)
        image = cv2.imread(str(root / "JPEGImages" / "train_00000.png")).astype(float)
        dark = cv2.imread(str(root / "dark" / "train_00000.png")).astype(float)
        residual.append(dark - image * 0.5)
    assert abs(residual[0].mean() - residual[1].mean()) < 1.5
    assert residual[1].std() == pytest.approx(residual[0].std() / 2, rel=0.15)


def test_incomplete_cache_regenerated_and_foreign_folder_refused(tmp_path: Path) -> None:
    cfg = TINY.model_copy(update={"n_train": 3, "n_val": 1, "n_test": 0, "n_pairs_train": 0, "n_pairs_val": 0})
    root = ensure_scenes(tmp_path / "c", cfg, progress=False, darken=halve)
    first = files(root)
    assert "pairs/shifts.json" not in first
    (root / MARKER).unlink()
    (root / "JPEGImages" / "train_00001.png").unlink()
    assert read_meta(root) is None
    ensure_scenes(root, cfg, progress=False, darken=halve)
    assert files(root) == first
    with pytest.raises(DataError, match="n_train=3"):
        ensure_scenes(root, cfg.model_copy(update={"n_train": 5}), progress=False, darken=halve)
    assert ensure_scenes(root, cfg.model_copy(update={"workers": 3}), progress=False, darken=halve) == root
    assert files(root) == first
    ensure_scenes(root, cfg, progress=False, darken=noisy)  # another darkener: regenerated
    assert read_meta(root)["darkener"].endswith("noisy")  # type: ignore[index]
    assert files(root)["dark/train_00000.png"] != first["dark/train_00000.png"]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="holds no scenes cache"):
        generate_scenes(foreign, cfg, progress=False, darken=halve)


def test_cli_tiny_generation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    args = ["data", "scenes", str(out), "--size", "48", "--n-train", "20", "--n-val", "4", "--n-test", "2",
            "--n-pairs-train", "2", "--n-pairs-val", "2", "--workers", "1", "--quiet"]
    assert main(args) == 0
    assert "wrote 34 images" in capsys.readouterr().out
    assert len(list((out / "dark").glob("*.png"))) == 26
    assert main(args) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(args[:5] + ["--n-train", "21"] + args[7:]) == 1
    assert "another config" in capsys.readouterr().err
    assert main(args[:5] + ["--n-train", "21"] + args[7:] + ["--force"]) == 0  # regenerated with the new config
    assert "wrote 35 images" in capsys.readouterr().out
    assert read_meta(out)["config"]["n_train"] == 21  # type: ignore[index]
    assert main(args + ["--size", "8"]) == 1
    assert "--size" in capsys.readouterr().err


def test_processes_started_together_generate_the_cache_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two `--jobs` lanes (here: threads) asking for a missing benchmark at once: one generates, the other waits for
    it and reuses the complete cache instead of regenerating over it."""
    import threading

    import darkseg.data.scenes as scenes

    made, original = [], scenes.generate_scenes

    def counted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        made.append(threading.get_ident())
        return original(*args, **kwargs)

    monkeypatch.setattr(scenes, "generate_scenes", counted)
    root = tmp_path / "scenes"
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            ensure_scenes(root, TINY, progress=False, darken=halve)
        except BaseException as err:  # noqa: BLE001 (reported below)
            errors.append(err)

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(made) == 1
    assert read_meta(root) is not None


def test_ensure_generated_makes_a_builtin_benchmark_and_leaves_datasets_on_disk_alone(tmp_path: Path) -> None:
    from darkseg.data.config import DataConfig
    from darkseg.data.registry import ensure_generated

    cfg = DataConfig(dataset="scenes", root=str(tmp_path / "scenes"), scenes=TINY)
    ensure_generated(cfg)
    assert read_meta(tmp_path / "scenes") is not None
    before = files(tmp_path / "scenes")
    ensure_generated(cfg)  # complete: reused as it is
    assert files(tmp_path / "scenes") == before
    ensure_generated(DataConfig(dataset="voc", root=str(tmp_path / "voc")))  # read from disk: nothing to make
    assert not (tmp_path / "voc").exists()
