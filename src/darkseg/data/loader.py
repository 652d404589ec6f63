"""Resumable, seeded data streams: an endless shuffled sample stream, error capture, collation, zipping."""

from __future__ import annotations

import zlib
from collections.abc import Iterator, Sequence
from typing import Literal

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from darkseg.errors import DataError
from darkseg.rng import stream_seed

ERROR_KEY = "_error"
SKIPPED_KEY = "_skipped"


class StreamSampler(Sampler[tuple[int, int]]):
    """An endless stream of ``(index, sample_seed)``: epoch ``e`` is a permutation seeded by ``(seed, e)``.

    The global position ``p`` of a sample determines everything about it (index and augmentation seed), so a run
    resumed at iteration ``i`` continues with exactly the samples an uninterrupted run would see. With several
    ranks, rank ``r`` takes positions ``start + k·world + r``.
    """

    def __init__(self, size: int, seed: int, start: int = 0, rank: int = 0, world: int = 1, shuffle: bool = True):
        if size <= 0:
            raise DataError("the training split is empty; check the list file of data.train_split")
        self.size, self.seed, self.start, self.rank, self.world, self.shuffle = size, seed, start, rank, world, shuffle

    def _permutation(self, epoch: int) -> list[int]:
        if not self.shuffle:
            return list(range(self.size))
        g = torch.Generator().manual_seed(stream_seed(self.seed, epoch))
        return torch.randperm(self.size, generator=g).tolist()

    def __iter__(self) -> Iterator[tuple[int, int]]:
        pos = self.start + self.rank
        epoch, perm = -1, []
        while True:
            e = pos // self.size
            if e != epoch:
                epoch, perm = e, self._permutation(e)
            yield perm[pos % self.size], stream_seed(self.seed, 1, pos)
            pos += self.world


class CaptureErrors(Dataset):
    """Returns ``{"_error": message}`` instead of raising ``DataError`` in a loader worker."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, item):  # noqa: ANN001 - int or (index, seed)
        try:
            return self.dataset[item]
        except DataError as err:
            return {ERROR_KEY: str(err)}


def collate(samples: Sequence[dict]) -> dict:
    """Stack tensors, list everything else; samples that failed to load are listed under ``_errors``."""
    errors = [s[ERROR_KEY] for s in samples if ERROR_KEY in s]
    good = [s for s in samples if ERROR_KEY not in s]
    batch: dict = {}
    for key in good[0].keys() if good else ():
        values = [s[key] for s in good]
        batch[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else values
    if errors:
        batch["_errors"] = errors
    return batch


def checked(batches: Iterator[dict], on_error: Literal["raise", "skip"]) -> Iterator[dict]:
    """Raise the first loading error in the main process, or move errors to ``_skipped`` (on_error=skip)."""
    for batch in batches:
        errors = batch.pop("_errors", [])
        if errors and on_error == "raise":
            raise DataError(f"{errors[0]} (set data.on_error=skip to skip unreadable samples)")
        if errors:
            batch[SKIPPED_KEY] = errors
        yield batch


def train_stream(
    dataset: Dataset,
    batch_size: int,
    seed: int,
    start_iteration: int,
    num_workers: int,
    on_error: Literal["raise", "skip"],
    rank: int = 0,
    world: int = 1,
) -> Iterator[dict]:
    """Batches from iteration ``start_iteration`` on (each rank gets ``batch_size`` samples per iteration)."""
    sampler = StreamSampler(len(dataset), seed, start_iteration * batch_size * world, rank, world)  # type: ignore[arg-type]
    loader = DataLoader(
        CaptureErrors(dataset),
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate,
        pin_memory=torch.cuda.is_available(),
        persistent_workers=False,
        prefetch_factor=2 if num_workers else None,
        # A private generator: a new loader iterator must not draw from the global torch RNG, whose state the
        # trainer checkpoints (otherwise a resumed run would see different dropout masks).
        generator=torch.Generator().manual_seed(stream_seed(seed, 2, start_iteration)),
    )
    return checked(iter(loader), on_error)


def zip_streams(**streams: Iterator[dict]) -> Iterator[dict]:
    """Zip several streams (e.g. labelled source and unlabelled target domains) into ``{"name/key": value}``."""
    while True:
        batch: dict = {}
        for name, stream in streams.items():
            part = next(stream)
            for k, v in part.items():
                if k == SKIPPED_KEY:
                    batch.setdefault(SKIPPED_KEY, []).extend(v)
                else:
                    batch[f"{name}/{k}"] = v
        yield batch


def domain_streams(
    datasets: dict[str, Dataset],
    batch_size: int,
    seed: int,
    start_iteration: int,
    num_workers: int,
    on_error: Literal["raise", "skip"],
    rank: int = 0,
    world: int = 1,
) -> Iterator[dict]:
    """Training batches of several domains zipped into ``{"domain/key": value}`` (e.g. ``source/mask``,
    ``target/image``, ``target/day``, ``target/flow``), from iteration ``start_iteration`` on.

    Each domain is its own :func:`train_stream` with a seed derived from ``(seed, domain name)``: domains of
    different sizes cycle independently, and a run resumed at iteration ``i`` sees exactly the batches of an
    uninterrupted one.
    """
    streams = {
        name: train_stream(ds, batch_size, stream_seed(seed, 3, zlib.crc32(name.encode())), start_iteration,
                           num_workers, on_error, rank, world)
        for name, ds in datasets.items()
    }
    return zip_streams(**streams)


def eval_loader(dataset: Dataset, batch_size: int, num_workers: int, rank: int = 0, world: int = 1) -> DataLoader:
    """Sequential loader over this rank's shard (indices ``rank::world``) for evaluation."""
    shard = torch.utils.data.Subset(dataset, range(rank, len(dataset), world))  # type: ignore[arg-type]
    return DataLoader(
        CaptureErrors(shard), batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate
    )
