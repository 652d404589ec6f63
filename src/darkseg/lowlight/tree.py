"""Darken a folder or a VOC-layout tree of images into a mirror tree, reproducibly and resumably."""

from __future__ import annotations

import json
import multiprocessing
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from darkseg.errors import DataError
from darkseg.fileio import atomic_write_bytes
from darkseg.lowlight.config import LowLightConfig
from darkseg.lowlight.imageio import FORMATS, encode_image, read_image
from darkseg.lowlight.params import image_seed
from darkseg.lowlight.synthesizer import LowLightSynthesizer

CONFIG_FILE = "lowlight_config.json"
PARAMS_FILE = "lowlight_params.jsonl"
VOC_IMAGE_DIR = "JPEGImages"


@dataclass
class SynthReport:
    """Outcome of ``synthesize_tree``; keys are paths relative to SRC (posix)."""

    written: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)  # already in DST from an earlier run, skipped
    failed: dict[str, str] = field(default_factory=dict)  # unreadable or unsupported: reason
    converted: dict[str, str] = field(default_factory=dict)  # explicit conversions: what was done


@dataclass(frozen=True)
class _Job:
    rel: str
    image_id: str
    src: Path
    dst: Path
    seed: int


def find_images(src: Path) -> list[tuple[str, str]]:
    """(relative path, image id) of the images to darken, sorted; in a VOC tree only those under JPEGImages/.

    The id is the path relative to the image root (the JPEGImages folder, else SRC) without suffix, so a VOC
    image's id is its VOC id. Hidden files and folders are ignored.
    """
    files = sorted(
        p
        for p in src.rglob("*")
        if p.suffix.lower() in FORMATS
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(src).parts)
    )
    voc_roots = sorted(p for p in src.rglob(VOC_IMAGE_DIR) if p.is_dir())
    found = []
    for p in files:
        root = next((r for r in voc_roots if r in p.parents), None)
        if voc_roots and root is None:
            continue
        found.append((p.relative_to(src).as_posix(), p.relative_to(root or src).with_suffix("").as_posix()))
    return found


def check_destination(src: Path, dst: Path) -> None:
    """Refuse a DST equal to SRC, inside SRC, or containing SRC (outputs could overwrite inputs)."""
    s, d = src.resolve(), dst.resolve()
    if d == s or s in d.parents:
        raise DataError(f"DST {dst} is SRC or inside SRC {src}; choose a DST outside SRC (SRC is never written)")
    if d in s.parents:
        raise DataError(f"DST {dst} contains SRC {src}; choose a DST outside SRC (SRC is never written)")


def _settings_record(cfg: LowLightConfig, seed: int) -> str:
    return json.dumps({"seed": seed, "config": cfg.model_dump(mode="json")}, indent=2) + "\n"


def _check_settings(dst: Path, record: str) -> None:
    """Resume only runs with the same seed and config; then (re)write DST/lowlight_config.json."""
    path = dst / CONFIG_FILE
    if path.is_file() and path.read_text() != record:
        raise DataError(f"{path} records a different seed or config; use a new DST, or delete DST to start over")
    atomic_write_bytes(path, record.encode())


_worker_synth: LowLightSynthesizer | None = None


def _init_worker(cfg_dump: dict[str, Any]) -> None:
    """Worker process: one thread, its own synthesizer."""
    global _worker_synth
    torch.set_num_threads(1)
    _worker_synth = LowLightSynthesizer(LowLightConfig.model_validate(cfg_dump))


def _process(job: _Job, synth: LowLightSynthesizer | None = None) -> tuple[_Job, str | None, str | None]:
    """Darken one file into DST; returns (job, conversion note, failure reason)."""
    synth = synth or _worker_synth
    assert synth is not None
    try:
        img = read_image(job.src)
    except DataError as err:
        return job, None, str(err)
    x = torch.from_numpy(img.rgb).permute(2, 0, 1)[None].contiguous()
    dark = synth(x, [job.seed])[0].permute(1, 2, 0).numpy()
    atomic_write_bytes(job.dst, encode_image(dark, img, job.src.suffix))
    return job, img.note, None


def _run_jobs(jobs: list[_Job], cfg: LowLightConfig, workers: int) -> Iterator[tuple[_Job, str | None, str | None]]:
    """Results in job order, in this process or in ``workers`` worker processes."""
    if not jobs:
        return
    if workers == 1:
        synth = LowLightSynthesizer(cfg)
        yield from (_process(job, synth) for job in jobs)
        return
    ctx: BaseContext
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")  # children fork from a server that imported torch once
        ctx.set_forkserver_preload([__name__])
    else:
        ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(cfg.model_dump(mode="json"),)) as pool:
        yield from pool.map(_process, jobs, chunksize=4)


def synthesize_tree(
    src: Path, dst: Path, cfg: LowLightConfig, seed: int, workers: int = 1, progress: bool = True
) -> SynthReport:
    """Darken every image of SRC into DST (same relative path, size and format), skipping outputs that exist.

    Image i uses the generator seeded by ``image_seed(seed, id)``, so the result does not depend on order, workers or
    interruptions. Writes DST/lowlight_config.json (seed + config) and DST/lowlight_params.jsonl (one line per image).
    """
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise DataError(f"SRC {src} is not a directory")
    if workers < 1:
        raise DataError(f"--workers must be >= 1, got {workers}")
    check_destination(src, dst)
    if dst.exists() and not dst.is_dir():
        raise DataError(f"DST {dst} exists and is not a directory; choose a folder")
    images = find_images(src)
    if not images:
        raise DataError(f"SRC {src} holds no images ({', '.join(sorted(FORMATS))})")
    dst.mkdir(parents=True, exist_ok=True)
    _check_settings(dst, _settings_record(cfg, seed))
    report = SynthReport()
    jobs = []
    for rel, image_id in images:
        job = _Job(rel, image_id, src / rel, dst / rel, image_seed(seed, image_id))
        if job.dst.exists():
            report.existing.append(rel)
        else:
            jobs.append(job)
    bar = tqdm(total=len(images), initial=len(report.existing), unit="img", disable=not progress, desc="synth")
    with bar:
        for job, note, failure in _run_jobs(jobs, cfg, workers):
            if failure is not None:
                report.failed[job.rel] = failure
                bar.write(f"skipped: {failure}", file=sys.stderr)
            else:
                report.written.append(job.rel)
                if note:
                    report.converted[job.rel] = note
            bar.update()
    _write_params(dst, cfg, seed, images, set(report.failed))
    return report


def _write_params(dst: Path, cfg: LowLightConfig, seed: int, images: list[tuple[str, str]], failed: set[str]) -> None:
    """DST/lowlight_params.jsonl: path, id, seed and sampled parameters of every image in DST, sorted by path."""
    synth = LowLightSynthesizer(cfg)
    lines = []
    for rel, image_id in images:
        if rel in failed:
            continue
        s = image_seed(seed, image_id)
        lines.append(json.dumps({"path": rel, "id": image_id, "seed": s, **synth.sample([s])[0]}) + "\n")
    atomic_write_bytes(dst / PARAMS_FILE, "".join(lines).encode())
