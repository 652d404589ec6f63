"""Depth maps for a folder or a VOC-layout dataset: batched, resumable, atomic writes, progress bar."""

from __future__ import annotations

import io
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from darkseg.errors import DataError
from darkseg.fileio import atomic_write_bytes

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
DEFAULT_VOC_IMAGES = "dark"  # the paper estimates depth from the low-light images

Estimator = Callable[[list[np.ndarray]], list[np.ndarray]]
Job = tuple[Path, Path]  # (image, output PNG)


@dataclass
class TreeSummary:
    """What one ``estimate_tree`` call did."""

    written: int = 0
    skipped: int = 0
    failed: list[Path] = field(default_factory=list)


def images_dir(src: Path, images: str | None = None) -> Path:
    """The folder to read: ``src/images`` if given, ``src/dark`` for a VOC root (has JPEGImages), else ``src``."""
    if not src.is_dir():
        raise DataError(f"{src}: no such directory; pass a folder of images or a VOC-layout dataset root")
    is_voc = (src / "JPEGImages").is_dir()
    name = images or (DEFAULT_VOC_IMAGES if is_voc else None)
    if name is None:
        return src
    folder = src / name
    if not folder.is_dir():
        hint = " (make the dark images with `darkseg synth`, or pass --images JPEGImages)" if is_voc else ""
        raise DataError(f"{folder}: no such image folder{hint}")
    return folder


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursive, sorted), relative to it."""
    return sorted(
        p.relative_to(folder) for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )


def encode_png16(depth: np.ndarray) -> bytes:
    """A [0, 1] depth map as a 16-bit grey PNG (near = 65535)."""
    ok, buf = cv2.imencode(".png", np.round(np.clip(depth, 0, 1) * 65535).astype(np.uint16))
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def _read_rgb(path: Path) -> np.ndarray | None:
    """8-bit RGB in stored pixel order (EXIF orientation ignored, like PIL), or None if unreadable."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    return None if img is None else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _write(depth: np.ndarray, out: Path, npy: bool) -> None:
    if npy:
        buf = io.BytesIO()
        np.save(buf, depth.astype(np.float32))
        atomic_write_bytes(out.with_suffix(".npy"), buf.getvalue())
    atomic_write_bytes(out, encode_png16(depth))


def _read_ahead(
    pool: ThreadPoolExecutor, chunks: list[list[Job]]
) -> Iterator[tuple[list[Job], list[np.ndarray | None]]]:
    """Yield each chunk with its decoded images while the next chunk is being read."""
    pending = [pool.map(_read_rgb, [src for src, _ in c]) for c in chunks[:1]]
    for k, chunk in enumerate(chunks):
        if k + 1 < len(chunks):
            pending.append(pool.map(_read_rgb, [src for src, _ in chunks[k + 1]]))
        yield chunk, list(pending.pop(0))


def estimate_tree(
    src: Path,
    dst: Path,
    estimator: Estimator,
    *,
    images: str | None = None,
    batch_size: int = 4,
    npy: bool = False,
    workers: int = 2,
    suffix: str = "",
) -> TreeSummary:
    """Write ``dst/<relative path of each image without extension><suffix>.png`` (and ``.npy``); skip finished ones."""
    folder = images_dir(src, images)
    dst = dst.resolve()
    if dst == folder.resolve() or folder.resolve() in dst.parents:
        raise DataError(f"{dst}: the output folder must not be the image folder {folder} or inside it")
    rels = list_images(folder)
    if not rels:
        raise DataError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    outs = [dst / rel.parent / f"{rel.stem}{suffix}.png" for rel in rels]
    clash = [o for o, n in Counter(outs).items() if n > 1]
    if clash:
        raise DataError(f"{folder}: several images map to the same output {clash[0]}; rename them")
    done = [o.is_file() and (not npy or o.with_suffix(".npy").is_file()) for o in outs]
    todo = [(folder / rel, out) for rel, out, d in zip(rels, outs, done) if not d]
    summary = TreeSummary(skipped=sum(done))
    chunks = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    with ThreadPoolExecutor(max(1, workers)) as pool, tqdm(total=len(todo), unit="img", desc="depth") as bar:
        for chunk, imgs in _read_ahead(pool, chunks):
            for (path, _), img in zip(chunk, imgs):
                if img is None:
                    log.warning("depth: cannot read %s, skipped", path)
                    summary.failed.append(path)
            ok = [(img, out) for (_, out), img in zip(chunk, imgs) if img is not None]
            if ok:
                depths = estimator([img for img, _ in ok])
                list(pool.map(_write, depths, [out for _, out in ok], [npy] * len(ok)))
                summary.written += len(ok)
            bar.update(len(chunk))
    return summary
