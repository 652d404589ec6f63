"""Random streams of a run: a seed per numbered stream, and blocks that draw from their own seed.

Training-only parts (teachers, discriminators, heads, per-step noise) and optional model parts (DGF2, relighting)
never draw from the global torch RNG, so runs with and without them stay paired (architecture.md).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

import torch


def stream_seed(seed: int, *parts: int) -> int:
    """A 63-bit seed derived from ``seed`` and integers, stable across processes and platforms."""
    h = hashlib.blake2b(digest_size=8)
    for v in (seed, *parts):
        h.update(int(v).to_bytes(8, "little", signed=True))
    return int.from_bytes(h.digest(), "little") >> 1


@contextlib.contextmanager
def own_rng(seed: int, device: torch.device | None = None) -> Iterator[None]:
    """Run a block on the torch RNG seeded with ``seed`` (and that of ``device`` if it is a GPU), leaving the global
    RNG state as it was."""
    with torch.random.fork_rng(devices=[device] if device is not None and device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield
