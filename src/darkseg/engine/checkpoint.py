"""Checkpoints: atomic directories of safetensors weights + trainer state; strict, reported weight loading."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from darkseg.errors import CheckpointError

log = logging.getLogger(__name__)

WEIGHTS = "model.safetensors"
STATE = "trainer.pt"
META = "meta.json"
LAST_POINTER = "last.txt"


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def tensors_for_saving(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU, contiguous, storage-independent copies (safetensors refuses shared storage)."""
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


def save_weights(path: Path, state: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Write a safetensors file atomically (temporary file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(tensors_for_saving(state), tmp, metadata=metadata)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """Read a weights file: safetensors, or a torch pickle loaded with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such weights file; pass the path of a .safetensors/.pth file")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as err:
            raise CheckpointError(f"{path}: unreadable safetensors file ({err}); re-export or re-download it") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types for corrupt/unsafe pickles
        raise CheckpointError(f"{path}: cannot be loaded as a weights-only torch file ({err.__class__.__name__})") from None
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: does not contain a state dict of tensors")
    return obj


def load_into(module: nn.Module, state: dict[str, torch.Tensor], source: str, partial: bool = False) -> list[str]:
    """Load ``state`` into ``module``; mismatches stop with the key lists unless ``partial`` (then reported).

    Returns the list of skipped keys (empty for a strict load).
    """
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [k for k in state if k in own and tuple(state[k].shape) != tuple(own[k].shape)]
    problems = missing or unexpected or mismatched
    if problems and not partial:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape-mismatched", mismatched)):
            if keys:
                parts.append(f"{len(keys)} {label} keys ({', '.join(keys[:4])}{', …' if len(keys) > 4 else ''})")
        raise CheckpointError(
            f"{source}: checkpoint does not fit the model: {'; '.join(parts)}; "
            "check that the config matches the checkpoint (or allow partial loading for pretrained backbones)"
        )
    usable = {k: v for k, v in state.items() if k in own and k not in mismatched}
    module.load_state_dict(usable, strict=False)
    skipped = unexpected + mismatched
    if problems:
        log.warning(
            "%s: partial load: %d tensors loaded, %d model keys left at init (%s), %d checkpoint keys skipped (%s)",
            source, len(usable), len(missing), ", ".join(missing[:6]), len(skipped), ", ".join(skipped[:6]),
        )
    return skipped


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
        _atomic_write_text(ckpt_dir / LAST_POINTER, name + "\n")
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
