"""The built-in ``scenes_daynight`` benchmark: a CPU-sized stand-in for Cityscapes → Dark Zurich adaptation.

Street scenes (``scenes_street``) in two cities of different style. Splits, written as a ``folder`` dataset::

    train, val           labelled daytime images of the source city (the "Cityscapes" of the benchmark)
    night_train          night images of the target city, each with a day image of the same place taken by a
                         camera shifted by up to ``max_shift`` pixels and zoomed by up to ``max_zoom`` (GPS-matched
                         pairs); dynamic classes (person, car) moved or absent between the two; used unlabelled
    night_val/night_test labelled night images of the target city, with their day images

Files under ``OUT`` (see ``darkseg.data.folder`` for the layout): ``images/<split>/``, ``masks/<split>/`` (night
labels for the night splits), ``day/<night split>/``, ``day_masks/<night split>/`` (labels of the day images, for
checking static-class losses), ``align_truth/<night split>.json`` (per pair the true 2×3 night→day pixel map of the
static scene), ``dataset.yaml``, ``scenes_daynight.json`` and ``.complete`` (written last). Night images go through
the ``darkseg.lowlight`` pipeline (sensor noise) at ``dark_binning`` times the resolution. The output is a pure
function of the config: generation is deterministic and a complete cache with the same config is reused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import yaml
from pydantic import Field

from darkseg.data import scenes_street as S
from darkseg.data.cityscapes import CITYSCAPES_CLASSES, CITYSCAPES_PALETTE
from darkseg.data.io import write_palette_png
from darkseg.data.scenes import Darkener, darkener_name
from darkseg.errors import DataError
from darkseg.fileio import atomic_write_bytes, cache_lock
from darkseg.schema import StrictModel

VERSION = 1
META = "scenes_daynight.json"
MARKER = ".complete"
CLASSES = S.CLASSES
PALETTE = np.zeros((256, 3), np.uint8)
PALETTE[: len(CLASSES)] = [CITYSCAPES_PALETTE[CITYSCAPES_CLASSES.index(c)] for c in CLASSES]
STATIC_CLASSES = CLASSES[: S.NUM_STATIC]
NIGHT_SPLITS = ("night_train", "night_val", "night_test")
_CODES = {"train": 0, "val": 1, "night_train": 2, "night_val": 3, "night_test": 4}
log = logging.getLogger(__name__)


class DayNightConfig(StrictModel):
    """Size, split sizes, camera offsets between day and night, seed and low-light settings."""

    height: int = Field(64, ge=32, le=512)
    width: int = Field(128, ge=32, le=1024)
    n_train: int = Field(600, ge=1)
    n_val: int = Field(100, ge=1)
    n_night_train: int = Field(300, ge=1)
    n_night_val: int = Field(100, ge=1)
    n_night_test: int = Field(150, ge=1)
    max_shift: int = Field(6, ge=0, le=32, description="largest day/night camera shift (pixels)")
    max_zoom: float = Field(0.1, ge=0, le=0.3, description="largest relative day/night zoom")
    keep_dynamic: float = Field(0.3, ge=0, le=1, description="chance that a car/person of the day image is still "
                                "there (moved) at night")
    seed: int = Field(0, ge=0)
    lowlight_preset: Literal["maet", "brooks", "no-noise"] = "maet"
    darkness: tuple[float, float] = Field((0.35, 0.1), description="mean and std of the low-light pipeline's "
                                          "exposure factor, applied after the night relighting (range 0.1..1)")
    dark_binning: int = Field(2, ge=1, le=4)

    def sizes(self) -> dict[str, int]:
        return {"train": self.n_train, "val": self.n_val, "night_train": self.n_night_train,
                "night_val": self.n_night_val, "night_test": self.n_night_test}


def default_darkener(cfg: DayNightConfig) -> Darkener:
    """``darkseg.lowlight`` with ``cfg.lowlight_preset`` and the exposure factor of ``cfg.darkness``."""
    from darkseg.lowlight import LowLightConfig, LowLightSynthesizer

    mean, std = cfg.darkness
    return LowLightSynthesizer(LowLightConfig(preset=cfg.lowlight_preset, darkness_mean=mean, darkness_std=std,
                                              darkness_range=(0.1, 1.0)))


def _margin(cfg: DayNightConfig) -> int:
    return cfg.max_shift + int(np.ceil(cfg.max_zoom * max(cfg.height, cfg.width) / 2)) + 2


def night_to_day(cfg: DayNightConfig, scale: float, dx: float, dy: float) -> np.ndarray:
    """2×3 map from night view pixels to day view pixels: zoom ``scale`` about the centre, then shift (dx, dy)."""
    cx, cy = (cfg.width - 1) / 2, (cfg.height - 1) / 2
    return np.array([[1 / scale, 0, cx - cx / scale + dx], [0, 1 / scale, cy - cy / scale + dy]])


def _render_source(cfg: DayNightConfig, i: int, split: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([cfg.seed, _CODES[split], i])
    m = _margin(cfg)
    place = S.sample_place(rng, (cfg.height + 2 * m, cfg.width + 2 * m), S.SOURCE_CITY)
    traffic = S.sample_traffic(rng, place, int(rng.integers(0, 4)), int(rng.integers(0, 4)))
    world, labels = S.render(place, traffic, rng, night=False)
    to_world = np.array([[1.0, 0, m], [0, 1.0, m]])
    size = (cfg.height, cfg.width)
    image = S.view(world * np.float32(S.SOURCE_CITY.cast), to_world, size, nearest=False)
    return image, S.view(labels, to_world, size, nearest=True)


def _render_pair(cfg: DayNightConfig, i: int, split: str) -> dict[str, Any]:
    """Day image, night image (before the low-light pipeline), both label maps and the true night→day map."""
    rng = np.random.default_rng([cfg.seed, _CODES[split], i])
    m = _margin(cfg)
    place = S.sample_place(rng, (cfg.height + 2 * m, cfg.width + 2 * m), S.TARGET_CITY)
    day_traffic = S.sample_traffic(rng, place, int(rng.integers(0, 4)), int(rng.integers(0, 4)))
    night_traffic = S.move_traffic(rng, place, day_traffic, cfg.keep_dynamic)
    day_world, day_labels = S.render(place, day_traffic, rng, night=False)
    night_world, night_labels = S.render(place, night_traffic, rng, night=True)
    scale = 1.0 + rng.uniform(-cfg.max_zoom, cfg.max_zoom)
    dx, dy = rng.uniform(-cfg.max_shift, cfg.max_shift, 2)
    truth = night_to_day(cfg, scale, dx, dy)
    day_to_world = np.array([[1.0, 0, m], [0, 1.0, m]])
    night_to_world = truth + day_to_world - np.array([[1.0, 0, 0], [0, 1.0, 0]])
    size, cast = (cfg.height, cfg.width), np.float32(S.TARGET_CITY.cast)
    return {
        "day": S.view(day_world * cast, day_to_world, size, nearest=False),
        "day_mask": S.view(day_labels, day_to_world, size, nearest=True),
        "night": S.view(night_world * cast, night_to_world, size, nearest=False),
        "mask": S.view(night_labels, night_to_world, size, nearest=True),
        "truth": truth.round(6).tolist(),
    }


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


def _write_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[..., ::-1])):
        raise DataError(f"cannot write {path}; check the folder is writable")


def _darken(images: list[np.ndarray], ids: list[str], cfg: DayNightConfig, darken: Darkener) -> np.ndarray:
    """The low-light pipeline on uint8 RGB images, run at ``dark_binning`` times the resolution and area-averaged."""
    import torch
    import torch.nn.functional as F

    from darkseg.lowlight import image_seed

    b = cfg.dark_binning
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    if b > 1:
        x = x.repeat_interleave(b, 2).repeat_interleave(b, 3)
    dark = darken(x.contiguous(), [image_seed(cfg.seed, i) for i in ids])
    if b > 1:
        dark = F.avg_pool2d(dark, b)
    return (dark.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _spec() -> dict[str, Any]:
    return {"classes": list(CLASSES), "palette": [list(map(int, c)) for c in PALETTE[: len(CLASSES)]],
            "ignore_index": 255, "static_classes": list(STATIC_CLASSES)}


def _marker(meta: Path) -> str:
    return hashlib.sha256(meta.read_bytes()).hexdigest() + "\n"


def read_meta(root: Path) -> dict[str, Any] | None:
    """The metadata of a complete cache under ``root``, or None."""
    meta, marker = Path(root) / META, Path(root) / MARKER
    if not (meta.is_file() and marker.is_file()) or marker.read_text() != _marker(meta):
        return None
    return json.loads(meta.read_text())


def generate(out: Path, cfg: DayNightConfig, darken: Darkener | None = None, progress: bool = True) -> Path:
    """Write the benchmark to ``out`` (cleared first if it holds an earlier cache; other content is refused)."""
    from tqdm import tqdm

    out = Path(out)
    darken = default_darkener(cfg) if darken is None else darken
    if out.exists() and any(out.iterdir()) and not (out / META).exists():
        raise DataError(f"{out} is not empty and holds no {META}; choose a new or empty folder")
    for name in ("images", "masks", "day", "day_masks", "align_truth", "align", "dataset.yaml", META, MARKER):
        path = out / name
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {"name": "scenes_daynight", "version": VERSION, "config": cfg.model_dump(mode="json"),
                            "darkener": darkener_name(darken), "classes": list(CLASSES)}
    atomic_write_bytes(out / META, json.dumps(meta, indent=1).encode())
    (out / "dataset.yaml").write_text(yaml.safe_dump(_spec(), sort_keys=False))
    counts = {}
    with tqdm(total=sum(cfg.sizes().values()), desc="scenes_daynight", unit="img", disable=not progress,
              mininterval=2) as bar:
        for split, n in cfg.sizes().items():
            pixels = np.zeros(len(CLASSES), np.int64)
            truths: dict[str, Any] = {}
            for start in range(0, n, 32):
                ids = [f"{split}_{i:05d}" for i in range(start, min(start + 32, n))]
                nights = []
                for k, sid in enumerate(ids):
                    if split in NIGHT_SPLITS:
                        pair = _render_pair(cfg, start + k, split)
                        nights.append(_to_uint8(pair["night"]))
                        _write_rgb(out / "day" / split / f"{sid}.png", _to_uint8(pair["day"]))
                        write_palette_png(out / "day_masks" / split / f"{sid}.png", pair["day_mask"], PALETTE)
                        truths[sid] = pair["truth"]
                        mask = pair["mask"]
                    else:
                        image, mask = _render_source(cfg, start + k, split)
                        _write_rgb(out / "images" / split / f"{sid}.png", _to_uint8(image))
                    write_palette_png(out / "masks" / split / f"{sid}.png", mask, PALETTE)
                    pixels += np.bincount(mask.ravel(), minlength=256)[: len(CLASSES)]
                if nights:
                    for sid, dark in zip(ids, _darken(nights, [f"{split}/{i}" for i in ids], cfg, darken)):
                        _write_rgb(out / "images" / split / f"{sid}.png", dark)
                bar.update(len(ids))
            if truths:
                (out / "align_truth").mkdir(exist_ok=True)
                (out / "align_truth" / f"{split}.json").write_text(json.dumps(truths, indent=0))
            counts[split] = {c: round(float(v) / max(pixels.sum(), 1), 4) for c, v in zip(CLASSES, pixels)}
    meta["pixel_freq"] = counts
    atomic_write_bytes(out / META, json.dumps(meta, indent=1).encode())
    (out / MARKER).write_text(_marker(out / META))
    return out


def ensure(root: Path, cfg: DayNightConfig, darken: Darkener | None = None, progress: bool = True,
           force: bool = False) -> Path:
    """``root`` holding the benchmark for ``cfg``: a complete cache is reused, a missing/partial one generated.

    A cache made with another config is refused (``force`` regenerates it); another generator version or darkener
    is regenerated.
    """
    root = Path(root)
    darken = default_darkener(cfg) if darken is None else darken
    with cache_lock(root):
        return _ensure(root, cfg, darken, progress, force)


def _ensure(root: Path, cfg: DayNightConfig, darken: Darkener, progress: bool, force: bool) -> Path:
    meta = read_meta(root)
    if meta is not None and not force:
        if meta.get("config") != cfg.model_dump(mode="json"):
            have = meta.get("config") or {}
            diff = ", ".join(f"{k}={have.get(k)!r} (wanted {v!r})" for k, v in cfg.model_dump(mode="json").items()
                             if have.get(k) != v)
            raise DataError(f"{root} holds scenes_daynight made with another config: {diff}; use another folder "
                            f"or 'darkseg data scenes_daynight {root} --force'")
        if meta.get("version") == VERSION and meta.get("darkener") == darkener_name(darken):
            return root
        log.info("%s was made by another generator version or darkener: regenerating", root)
    return generate(root, cfg, darken, progress)
