"""Checkpoints: atomic directories of safetensors weights + trainer state (weights-only loading)."""

from __future__ import annotations

import json
import logging
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
    try:
        save_file(tensors_for_saving(weights), str(tmp / WEIGHTS))
        torch.save(trainer_state, tmp / STATE)
        (tmp / META).write_text(json.dumps(meta, indent=2, sort_keys=True))
        final = ckpt_dir / name
        if final.exists():
            old = ckpt_dir / f".{name}.old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if update_last:
        atomic_write_bytes(ckpt_dir / LAST_POINTER, (name + "\n").encode(), fsync=True)
    if keep_last:
        _prune(ckpt_dir, keep_last, protect={name})
    return ckpt_dir / name


def _prune(ckpt_dir: Path, keep_last: int, protect: set[str]) -> None:
    periodic = sorted(p for p in ckpt_dir.glob("iter_*") if p.is_dir())
    for p in periodic[:-keep_last]:
        if p.name not in protect:
            shutil.rmtree(p, ignore_errors=True)


def latest_checkpoint(ckpt_dir: Path) -> Path | None:
    """The checkpoint named by the ``last`` pointer, or None when there is none."""
    pointer = ckpt_dir / LAST_POINTER
    if not pointer.is_file():
        return None
    path = ckpt_dir / pointer.read_text().strip()
    return path if (path / WEIGHTS).is_file() and (path / STATE).is_file() else None


def load_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """Read (weights, trainer state, meta) of a checkpoint directory; trainer state with ``weights_only=True``."""
    path = Path(path)
    for f in (WEIGHTS, STATE, META):
        if not (path / f).is_file():
            raise CheckpointError(f"{path}: not a complete darkseg checkpoint ({f} missing)")
    weights = read_weights(path / WEIGHTS)
    try:
        state = torch.load(path / STATE, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        raise CheckpointError(f"{path / STATE}: unreadable trainer state ({err.__class__.__name__})") from None
    meta = json.loads((path / META).read_text())
    return weights, state, meta
