"""Checkpoints: atomic directories of safetensors weights + trainer state (weights-only loading).

A checkpoint directory is only ever visible complete: it is written under a hidden temporary name (files flushed to
the disk), then renamed into place; pruning renames a directory to a hidden name before deleting it. Hidden
leftovers of a killed process are removed by :func:`clean_stale` when a run starts.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from darkseg.errors import CheckpointError
from darkseg.fileio import atomic_write, atomic_write_bytes
from darkseg.models.weights import read_weights

log = logging.getLogger(__name__)

WEIGHTS = "model.safetensors"
STATE = "trainer.pt"
META = "meta.json"
LAST_POINTER = "last.txt"
FINAL = "final"


def tensors_for_saving(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU, contiguous, storage-independent copies (safetensors refuses shared storage)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


def save_weights(path: Path, state: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Write a safetensors file atomically (temporary file in the same folder, then rename)."""
    tensors = tensors_for_saving(state)
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def prefixed(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of ``state`` under ``prefix.``, with the prefix removed."""
    p = prefix + "."
    return {k[len(p):]: v for k, v in state.items() if k.startswith(p)}


def non_finite(weights: dict[str, torch.Tensor]) -> list[str]:
    """Names of floating-point tensors holding NaN or Inf."""
    return [k for k, v in weights.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(
    ckpt_dir: Path,
    name: str,
    weights: dict[str, torch.Tensor],
    trainer_state: dict[str, Any],
    meta: dict[str, Any],
    keep_last: int | None = None,
    update_last: bool = True,
) -> Path:
    """Write ``ckpt_dir/name/`` atomically: a temporary directory renamed into place, then the ``last`` pointer."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=ckpt_dir, prefix=f".{name}.", suffix=".tmp"))
    final = ckpt_dir / name
    try:
        save_file(tensors_for_saving(weights), str(tmp / WEIGHTS))
        torch.save(trainer_state, tmp / STATE)
        (tmp / META).write_text(json.dumps(meta, indent=2, sort_keys=True))
        for f in (WEIGHTS, STATE, META):
            _fsync(tmp / f)
        periodic = keep_last and name.startswith("iter_")
        if periodic and keep_last > 1:  # room for the new one first: never more than keep_last visible
            _prune(ckpt_dir, keep_last - 1, protect={name})
        if final.exists():
            _discard(final)
        os.replace(tmp, final)
        _fsync(ckpt_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if update_last:
        atomic_write_bytes(ckpt_dir / LAST_POINTER, (name + "\n").encode(), fsync=True)
    if periodic and keep_last == 1:  # the only checkpoint goes once its successor is in place
        _prune(ckpt_dir, 1, protect=set())
    return final


def _discard(path: Path) -> None:
    """Remove a checkpoint directory: an atomic rename to a hidden name first, so it never shows half-deleted."""
    hidden = path.with_name(f".{path.name}.del.tmp")
    shutil.rmtree(hidden, ignore_errors=True)
    os.replace(path, hidden)
    shutil.rmtree(hidden, ignore_errors=True)


def _prune(ckpt_dir: Path, keep_last: int, protect: set[str]) -> None:
    periodic = sorted(p for p in ckpt_dir.glob("iter_*") if p.is_dir() and p.name not in protect)
    for p in periodic[: max(len(periodic) - keep_last, 0)]:
        _discard(p)


def clean_stale(ckpt_dir: Path) -> list[str]:
    """Delete hidden temporaries left by a killed writer (``.<name>.*.tmp``); returns their names."""
    removed = []
    for p in sorted(ckpt_dir.glob(".*.tmp")) if ckpt_dir.is_dir() else []:
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        removed.append(p.name)
    if removed:
        log.info("removed %d unfinished checkpoint temporaries in %s: %s", len(removed), ckpt_dir, ", ".join(removed))
    return removed


def _iteration(path: Path) -> float:
    """A checkpoint's iteration from its meta, else from its name (``final``: after every periodic one)."""
    try:
        return int(json.loads((path / META).read_text())["iteration"])
    except Exception:  # noqa: BLE001 - load_checkpoint reports the damage when it is tried
        digits = path.name.removeprefix("iter_")
        return float("inf") if path.name == FINAL else int(digits) if digits.isdigit() else -1


def checkpoint_candidates(ckpt_dir: Path) -> tuple[list[Path], list[str]]:
    """Visible checkpoint directories, newest first, and notes about a ``last`` pointer that names none of them.

    Newest means the highest iteration; the one the ``last`` pointer names wins a tie.
    """
    if not ckpt_dir.is_dir():
        return [], []
    dirs = [p for p in ckpt_dir.iterdir() if p.is_dir() and (p.name.startswith("iter_") or p.name == FINAL)]
    notes = []
    pointer = ckpt_dir / LAST_POINTER
    named = pointer.read_text().strip() if pointer.is_file() else None
    if named is not None and not (ckpt_dir / named).is_dir():
        notes.append(f"{pointer} names {named!r}, which does not exist")
    dirs.sort(key=lambda p: (_iteration(p), p.name == named, p.name == FINAL), reverse=True)
    return dirs, notes


def newer_than(ckpt_dir: Path, chosen: Path) -> list[Path]:
    """The run's checkpoints of a later iteration than ``chosen``."""
    keep = _iteration(chosen)
    return [p for p in checkpoint_candidates(ckpt_dir)[0] if _iteration(p) > keep]


def set_aside(ckpt_dir: Path, paths: list[Path], reason: str) -> None:
    """Move checkpoints to ``ckpt_dir/superseded/`` (kept for the user, never resumed from or pruned)."""
    if not paths:
        return
    target = ckpt_dir / "superseded"
    target.mkdir(exist_ok=True)
    for p in paths:
        dest = target / p.name
        if dest.exists():
            _discard(dest)
        os.replace(p, dest)
    log.warning("%s: moved %s to %s", reason, ", ".join(p.name for p in paths), target)


def latest_checkpoint(ckpt_dir: Path) -> Path | None:
    """The newest complete checkpoint directory (all three files present), or None when there is none."""
    dirs, _ = checkpoint_candidates(ckpt_dir)
    for p in dirs:
        if all((p / f).is_file() for f in (WEIGHTS, STATE, META)):
            return p
    return None


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """Read (weights, trainer state, meta) of a checkpoint directory; trainer state with ``weights_only=True``."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such checkpoint directory")
    for f in (WEIGHTS, STATE, META):
        if not (path / f).is_file():
            raise CheckpointError(f"{path}: not a complete darkseg checkpoint ({f} missing)")
    weights = read_weights(path / WEIGHTS)
    try:
        state = torch.load(path / STATE, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        raise CheckpointError(f"{path / STATE}: unreadable trainer state ({err.__class__.__name__}); "
                              "the file is damaged or was not written by darkseg") from None
    try:
        meta = json.loads((path / META).read_text())
    except ValueError:
        raise CheckpointError(f"{path / META}: unreadable checkpoint metadata (not JSON)") from None
    return weights, state, meta


def load_resumable(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """:func:`load_checkpoint`, refusing weights with NaN/Inf and a recorded non-finite loss."""
    weights, state, meta = load_checkpoint(path)
    bad = non_finite(weights)
    if bad:
        raise CheckpointError(f"{path}: weights hold NaN/Inf ({bad[0]} and {len(bad) - 1} more)")
    loss = meta.get("loss")
    if loss is not None and not math.isfinite(loss):
        raise CheckpointError(f"{path}: the loss at iteration {meta.get('iteration')} was {loss}")
    return weights, state, meta
