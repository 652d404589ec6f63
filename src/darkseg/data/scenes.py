"""The built-in procedural low-light benchmark ``scenes``: generator and on-disk cache in the VOC layout.

Every image is a seeded procedural scene (``scenes_render``): 8 object classes + background, each class a shape
family with its own texture statistics, overlapping colours, 1-3 objects with occlusion, textured clutter. For each
image the cache stores the normal-light RGB, the pixel mask, the true depth and a low-light version made by
``darkseg.lowlight`` (any ``darken(images, seeds)`` callable can be passed instead, e.g. in tests).

Layout written under ``OUT`` (every image is a lossless PNG, so the image extension is ``.png``, not VOC's ``.jpg``)::

    OUT/JPEGImages/<id>.png               normal-light RGB
    OUT/dark/<id>.png                     low-light RGB of the same image (pixel-aligned)
    OUT/depth/<id>.png                    16-bit relative inverse depth, min-max normalised per image (near = 65535)
    OUT/SegmentationClassAug/<id>.png     palette PNG (VOC palette): 0 background, 1..8 classes, 255 mixed edge pixel
    OUT/ImageSets/Segmentation/{train,val,test}.txt     ids train_00000.., val_00000.., test_00000..
    OUT/pairs/day/...                     day/night pairs of the same scene, each root in the same VOC layout
    OUT/pairs/night/...                   (JPEGImages, SegmentationClassAug, depth, ImageSets/Segmentation/{train,val})
    OUT/pairs/shifts.json                 {id: [dx, dy]}: night pixel (x, y) shows day pixel (x + dx, y + dy)
    OUT/scenes.json                       config, version, darkener, class names, per-split class frequencies
    OUT/.complete                         written last; its absence marks a half-written cache

Low-light images are rendered by the low-light pipeline at ``dark_binning`` (default 2) times the resolution and
area-averaged back, like a binned sensor: the per-pixel noise std drops by that factor and the noise-free image is
unchanged. At 96 px objects span few pixels, so without binning (``dark_binning=1``: the pipeline applied to the
stored image, as ``darkseg synth`` does) MAET noise erases far more than it does on VOC-sized photos; with 2 a tiny
supervised CNN keeps about 3/4 of its normal-light mIoU on dark images, near the paper's 43.4/59.7.

Day and night of a pair share an id (``pair_train_00000``, ``pair_val_00000``). The night image is the same scene seen
by a camera shifted by up to ``max_shift`` pixels, relit at night (dim bluish ambient, coloured light pools) and then
passed through the low-light pipeline; the night train split is meant to be used unlabelled (its masks are stored), the
night val split is labelled for evaluation. Image-level labels are the classes with at least
``scenes_render.min_pixels`` mask pixels; smaller slivers are marked 255.

Output is a pure function of the config (``workers`` aside): rerunning with the same library versions on the same
kind of machine gives byte-identical files.

Public API: :class:`ScenesConfig`, :func:`generate_scenes`, :func:`ensure_scenes`, :func:`read_meta`,
``SCENES_CLASSES`` (background first), ``IMAGE_EXT``; ``darkseg data scenes OUT`` on the command line.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from darkseg.data import scenes_render as R
from darkseg.data.io import write_palette_png
from darkseg.errors import DataError
from darkseg.fileio import atomic_write_bytes, cache_lock
from darkseg.schema import StrictModel

SCENES_VERSION = 1
SCENES_CLASSES: tuple[str, ...] = ("background",) + tuple(spec[0] for spec in R.CLASS_SPECS)
IMAGE_EXT = ".png"
MARKER = ".complete"
META = "scenes.json"
_OWNED = ("JPEGImages", "SegmentationClassAug", "ImageSets", "dark", "depth", "pairs", META, MARKER)
log = logging.getLogger(__name__)

Darkener = Callable[[Any, list[int]], Any]
"""``darken(images, seeds)``: float32 tensor (B, 3, H, W) RGB in [0, 1] and B ints -> tensor of the same shape."""


class ScenesConfig(StrictModel):
    """The ``scenes`` benchmark: image size, split sizes, seed and low-light preset (``workers`` only sets speed)."""

    size: int = Field(96, ge=32, le=1024, description="image side in pixels")
    n_train: int = Field(2000, ge=1)
    n_val: int = Field(300, ge=1)
    n_test: int = Field(300, ge=0)
    n_pairs_train: int = Field(500, ge=0, description="day/night pairs for adaptation training")
    n_pairs_val: int = Field(100, ge=0, description="day/night pairs for evaluation")
    max_shift: int = Field(4, ge=0, le=32, description="largest camera shift (pixels) between day and night")
    seed: int = Field(0, ge=0)
    lowlight_preset: Literal["maet", "brooks", "no-noise"] = Field(
        "maet", description="darkseg.lowlight preset used for dark and night images"
    )
    dark_binning: int = Field(
        2, ge=1, le=4, description="run the low-light pipeline at this many times the resolution, then area-average"
    )
    ignore_edges: bool = Field(True, description="mark mixed anti-aliased edge pixels 255")
    workers: int = Field(0, ge=0, description="processes; 0 = one per CPU core")

    def identity(self) -> dict[str, Any]:
        """The fields that determine the generated files."""
        return self.model_dump(exclude={"workers"})


def default_darkener(preset: str) -> Darkener:
    """``darkseg.lowlight``'s synthesiser with ``preset``; images are seeded by ``darkseg.lowlight.image_seed``."""
    from darkseg.lowlight import LowLightConfig, LowLightSynthesizer

    return LowLightSynthesizer(LowLightConfig(preset=preset))


def darkener_name(darken: Darkener) -> str:
    """A name recorded in ``scenes.json`` so that a cache made by another darkener is regenerated."""
    obj = darken if callable(darken) and hasattr(darken, "__qualname__") else type(darken)
    name = f"{obj.__module__}.{obj.__qualname__}"
    if obj.__module__.startswith("darkseg.lowlight"):
        from darkseg.lowlight import PIPELINE_VERSION

        name += f"@v{PIPELINE_VERSION}"
    return name


_SPLIT_CODES = {"train": 0, "val": 1, "test": 2, "pair_train": 3, "pair_val": 4}
_CHUNK = 16  # images per job: fixed, so the darkener sees the same batches whatever the number of workers
_WORKER: dict[str, Any] = {}


def _init_worker(out: Path, cfg: ScenesConfig, darken: Darkener, pool: bool) -> None:
    if pool:
        import cv2
        import torch

        torch.set_num_threads(1)
        cv2.setNumThreads(1)
    priors = np.asarray([spec[1] for spec in R.CLASS_SPECS])
    _WORKER.update(out=out, cfg=cfg, darken=darken, priors=priors / priors.sum())


def _write_rgb(path: Path, rgb: np.ndarray) -> None:
    import cv2

    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1])):
        raise DataError(f"cannot write {path}; check the folder is writable")


def _write_depth(path: Path, inv_depth: np.ndarray) -> None:
    import cv2

    lo, hi = float(inv_depth.min()), float(inv_depth.max())
    norm = (inv_depth - lo) / max(hi - lo, 1e-12)
    cv2.imwrite(str(path), np.round(norm * 65535).astype(np.uint16))


def _finalise(mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mark classes with fewer than ``min_pixels`` pixels ignore; return mask, multi-hot labels, pixel counts."""
    counts = np.bincount(mask.ravel(), minlength=256)[: len(SCENES_CLASSES)]
    small = np.nonzero((counts > 0) & (counts < R.min_pixels(size)))[0]
    small = small[small > 0]
    if len(small):
        mask = np.where(np.isin(mask, small), np.uint8(R.IGNORE), mask)
        counts[small] = 0
    return mask, (counts[1:] > 0).astype(np.int64), counts


class _Stats:
    """Per-view image count, images per class and labelled pixels per class."""

    def __init__(self) -> None:
        self.views: dict[str, list[Any]] = {}

    def add(self, view: str, labels: np.ndarray, counts: np.ndarray, n: int = 1) -> None:
        entry = self.views.setdefault(view, [0, np.zeros(len(SCENES_CLASSES) - 1, np.int64),
                                             np.zeros(len(SCENES_CLASSES), np.int64)])
        entry[0] += n
        entry[1] += labels
        entry[2] += counts

    def merge(self, other: _Stats) -> None:
        for view, (n, labels, counts) in other.views.items():
            self.add(view, labels, counts, n)

    def summary(self) -> dict[str, Any]:
        out = {}
        for view, (n, labels, counts) in sorted(self.views.items()):
            out[view] = {
                "images": n,
                "image_freq": {c: round(float(v) / max(n, 1), 4) for c, v in zip(SCENES_CLASSES[1:], labels)},
                "pixel_freq": {c: round(float(v) / max(counts.sum(), 1), 5) for c, v in zip(SCENES_CLASSES, counts)},
            }
        return out


def _save_labels(root: Path, image_id: str, mask: np.ndarray, inv_depth: np.ndarray, stats: _Stats, view: str) -> None:
    """Write the mask and depth of one image and count its classes."""
    mask, labels, counts = _finalise(mask, mask.shape[0])
    write_palette_png(root / "SegmentationClassAug" / f"{image_id}.png", mask)
    _write_depth(root / "depth" / f"{image_id}.png", inv_depth)
    stats.add(view, labels, counts)


def _darken_and_write(batch: list[tuple[Path, str, np.ndarray]]) -> None:
    """Darken uint8 RGB images in one call and write them as ``path``.

    With ``dark_binning`` b > 1 each pixel is repeated b×b times before the low-light pipeline and the result is
    area-averaged back (sensor binning): the noise std drops by b while the noise-free image is unchanged.
    """
    import torch
    import torch.nn.functional as F

    if not batch:
        return
    from darkseg.lowlight import image_seed

    cfg = _WORKER["cfg"]
    b = cfg.dark_binning
    images = torch.from_numpy(np.stack([img for _, _, img in batch])).permute(0, 3, 1, 2).float() / 255
    if b > 1:
        images = images.repeat_interleave(b, 2).repeat_interleave(b, 3)
    dark = _WORKER["darken"](images.contiguous(), [image_seed(cfg.seed, image_id) for _, image_id, _ in batch])
    if b > 1:
        dark = F.avg_pool2d(dark, b)
    dark = (dark.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for (path, _, _), img in zip(batch, dark):
        _write_rgb(path, img)


def _run_job(job: tuple[str, int, int]) -> tuple[int, _Stats, dict[str, list[int]]]:
    """Render, darken and write images ``start..stop-1`` of ``split``."""
    split, start, stop = job
    out, cfg, priors = _WORKER["out"], _WORKER["cfg"], _WORKER["priors"]
    size, stats, shifts, to_darken = cfg.size, _Stats(), {}, []
    pad = cfg.max_shift if split.startswith("pair") else 0
    for i in range(start, stop):
        rng = np.random.default_rng([cfg.seed, _SPLIT_CODES[split], i])
        _, view = R.make_scene(rng, size, pad, priors, cfg.ignore_edges)
        image_id = f"{split}_{i:05d}"
        rgb = np.round(view.image * 255).astype(np.uint8)
        if not split.startswith("pair"):
            _write_rgb(out / "JPEGImages" / f"{image_id}{IMAGE_EXT}", rgb)
            _save_labels(out, image_id, view.mask, view.inv_depth, stats, split)
            to_darken.append((out / "dark" / f"{image_id}{IMAGE_EXT}", image_id, rgb))
            continue
        part, day_root, night_root = split.removeprefix("pair_"), out / "pairs" / "day", out / "pairs" / "night"
        dx, dy = (int(v) for v in rng.integers(-pad, pad + 1, 2))
        day = np.s_[pad:pad + size, pad:pad + size]
        night = np.s_[pad + dy:pad + dy + size, pad + dx:pad + dx + size]
        lit = np.round(R.night_relight(view.image, rng, size) * 255).astype(np.uint8)
        _write_rgb(day_root / "JPEGImages" / f"{image_id}{IMAGE_EXT}", rgb[day])
        _save_labels(day_root, image_id, view.mask[day], view.inv_depth[day], stats, f"pairs/day/{part}")
        _save_labels(night_root, image_id, view.mask[night], view.inv_depth[night], stats, f"pairs/night/{part}")
        to_darken.append((night_root / "JPEGImages" / f"{image_id}{IMAGE_EXT}", image_id, lit[night]))
        shifts[image_id] = [dx, dy]
    _darken_and_write(to_darken)
    return stop - start, stats, shifts


def _split_sizes(cfg: ScenesConfig) -> dict[str, int]:
    return {"train": cfg.n_train, "val": cfg.n_val, "test": cfg.n_test,
            "pair_train": cfg.n_pairs_train, "pair_val": cfg.n_pairs_val}


def _prepare(out: Path) -> None:
    """Make ``out`` an empty cache folder: clear a previous scenes cache, refuse any other non-empty folder."""
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} exists and is not a folder; choose another output folder")
    if out.exists() and any(out.iterdir()) and not (out / META).exists():
        raise DataError(f"{out} is not empty and holds no scenes cache ({META} missing); choose a new or empty folder")
    for name in _OWNED:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    for root, extra in ((out, ["dark"]), (out / "pairs" / "day", []), (out / "pairs" / "night", [])):
        for sub in ["JPEGImages", "SegmentationClassAug", "depth", "ImageSets/Segmentation", *extra]:
            (root / sub).mkdir(parents=True, exist_ok=True)


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


def _marker_text(meta_path: Path) -> str:
    import hashlib

    return hashlib.sha256(meta_path.read_bytes()).hexdigest() + "\n"


def read_meta(root: Path) -> dict[str, Any] | None:
    """``scenes.json`` of a complete cache under ``root``, or None when it is missing or half written."""
    meta, marker = Path(root) / META, Path(root) / MARKER
    if not (meta.is_file() and marker.is_file()) or marker.read_text() != _marker_text(meta):
        return None
    return json.loads(meta.read_text())


def _jobs(cfg: ScenesConfig) -> list[tuple[str, int, int]]:
    return [(split, a, min(a + _CHUNK, n)) for split, n in _split_sizes(cfg).items() for a in range(0, n, _CHUNK)]


def _pool_map(jobs: list[tuple[str, int, int]], workers: int, init: tuple[Any, ...]) -> Iterator[Any]:
    """``_run_job`` over ``jobs`` in fresh (spawned) processes, results in job order."""
    import multiprocessing
    import pickle
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    try:
        pickle.dumps(init)
    except Exception as err:
        raise TypeError(f"the darkener must be picklable to run with workers > 1 ({err})") from err
    ctx = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=init) as pool:
            yield from pool.map(_run_job, jobs)
    except BrokenProcessPool as err:
        raise RuntimeError("a scenes worker process died: a custom darkener must be importable by a fresh process, "
                           "and a script generating with workers > 1 needs an `if __name__ == '__main__':` guard "
                           "(or use workers=1)") from err


def generate_scenes(
    out: Path, cfg: ScenesConfig, progress: bool = True, darken: Darkener | None = None
) -> Path:
    """Generate the benchmark into ``out`` (replacing a previous scenes cache there) and return ``out``.

    ``darken(images, seeds)`` makes the low-light images; by default ``darkseg.lowlight`` with
    ``cfg.lowlight_preset``. With ``workers`` > 1 it is sent to worker processes, so it must be picklable.
    """
    from tqdm import tqdm

    out = Path(out)
    darken = default_darkener(cfg.lowlight_preset) if darken is None else darken
    _prepare(out)
    meta: dict[str, Any] = {"name": "scenes", "version": SCENES_VERSION, "config": cfg.identity(),
                            "darkener": darkener_name(darken), "classes": list(SCENES_CLASSES), "image_ext": IMAGE_EXT}
    _write_json(out / META, meta)  # marks the folder as a (not yet complete) scenes cache
    jobs = _jobs(cfg)
    workers = min(cfg.workers or len(os.sched_getaffinity(0)), len(jobs))
    stats, shifts = _Stats(), {}
    if workers <= 1:
        _init_worker(out, cfg, darken, pool=False)
        results: Iterator[tuple[int, _Stats, dict[str, list[int]]]] = map(_run_job, jobs)
    else:
        results = _pool_map(jobs, workers, (out, cfg, darken, True))
    with tqdm(total=sum(_split_sizes(cfg).values()), desc="scenes", unit="img", disable=not progress,
              mininterval=0.5 if sys.stderr.isatty() else 30.0) as bar:
        for n, job_stats, job_shifts in results:
            stats.merge(job_stats)
            shifts.update(job_shifts)
            bar.update(n)
    _write_lists(out, cfg)
    if cfg.n_pairs_train or cfg.n_pairs_val:
        _write_json(out / "pairs" / "shifts.json", shifts)
    else:
        shutil.rmtree(out / "pairs")
    meta["stats"] = stats.summary()
    _write_json(out / META, meta)
    (out / MARKER).write_text(_marker_text(out / META))
    return out


def _write_lists(out: Path, cfg: ScenesConfig) -> None:
    sizes = _split_sizes(cfg)
    roots = [(out, split, split) for split in ("train", "val", "test")]
    roots += [(out / "pairs" / side, f"pair_{part}", part) for side in ("day", "night") for part in ("train", "val")]
    for root, split, name in roots:
        ids = "".join(f"{split}_{i:05d}\n" for i in range(sizes[split]))
        (root / "ImageSets" / "Segmentation" / f"{name}.txt").write_text(ids)


def ensure_scenes(root: Path, cfg: ScenesConfig, progress: bool = True, darken: Darkener | None = None,
                  force: bool = False) -> Path:
    """Return ``root`` holding the benchmark for ``cfg``: reuse a complete cache, (re)generate a missing or partial one.

    A complete cache made by another generator version or darkener is regenerated; one made with a different config
    is refused (delete it, use another folder, or ``force``: ``darkseg data scenes --force``). Under the cache's
    lock, so processes started together make it once.
    """
    root = Path(root)
    darken = default_darkener(cfg.lowlight_preset) if darken is None else darken
    with cache_lock(root):
        return _ensure_scenes(root, cfg, progress, darken, force)


def _ensure_scenes(root: Path, cfg: ScenesConfig, progress: bool, darken: Darkener, force: bool) -> Path:
    meta = None if force else read_meta(root)
    if meta is not None:
        wanted = json.loads(json.dumps(cfg.identity()))
        if meta.get("config") != wanted:
            have = meta.get("config") or {}
            diff = ", ".join(f"{k}={have.get(k)!r} (wanted {v!r})" for k, v in wanted.items() if have.get(k) != v)
            raise DataError(f"{root} holds scenes made with another config: {diff}; use another folder or "
                            f"overwrite it with 'darkseg data scenes {root} --force'")
        if meta.get("version") == SCENES_VERSION and meta.get("darkener") == darkener_name(darken):
            return root
        log.info("%s was made by scenes v%s with %s: regenerating", root, meta.get("version"), meta.get("darkener"))
    elif (root / META).exists() and not force:
        log.info("%s holds a half-written scenes cache: regenerating", root)
    return generate_scenes(root, cfg, progress, darken)
