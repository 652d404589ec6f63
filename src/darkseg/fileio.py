"""Atomic file writes: a temporary file next to the target, then a rename (readers never see a partial file)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path


def atomic_write(path: Path, write: Callable[[Path], None], fsync: bool = False) -> None:
    """Call ``write(tmp)`` on a temporary path next to ``path``, then rename it into place.

    ``fsync`` also flushes the file to the disk before the rename. The temporary file is removed on any failure.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes, fsync: bool = False) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda tmp: tmp.write_bytes(data), fsync)


@contextlib.contextmanager
def cache_lock(cache: Path) -> Iterator[None]:
    """Held while a process checks and makes the cache folder ``cache`` (a lock file ``.<name>.lock`` beside it), so
    that processes started together (``reproduce --jobs`` lanes, two ``darkseg train`` commands) make it once: the
    others wait, then find it complete. Blocks until the lock is free."""
    from filelock import FileLock

    cache = Path(cache)
    cache.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(cache.parent / f".{cache.name}.lock"):
        yield
