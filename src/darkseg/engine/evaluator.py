"""Evaluation of a deployed segmenter over a split: one confusion matrix, summed over ranks."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset
from tqdm import tqdm

from darkseg.data.loader import ERROR_KEY, CaptureErrors
from darkseg.engine.config import InferenceConfig
from darkseg.engine.distributed import DistEnv, all_reduce_sum
from darkseg.engine.inference import final_labels, predict_probs
from darkseg.errors import DataError
from darkseg.metrics import ConfusionMatrix, SegMetrics

log = logging.getLogger(__name__)


def uses_depth(model: nn.Module) -> bool:
    """Whether a segmenter consumes a depth map (it was built with a depth-prior module)."""
    return bool(getattr(model, "uses_depth", False))


def same_size_groups(samples: Iterable[dict], max_batch: int) -> Iterator[list[dict]]:
    """Group consecutive samples of equal image size into batches of at most ``max_batch``."""
    group: list[dict] = []
    for s in samples:
        if group and (len(group) == max_batch or s["mask"].shape != group[0]["mask"].shape):
            yield group
            group = []
        group.append(s)
    if group:
        yield group


def iterate_samples(dataset: Dataset, env: DistEnv, num_workers: int, on_error: str) -> Iterator[dict]:
    """This rank's shard of a split, one sample at a time; unreadable samples raise or are skipped."""
    shard = Subset(dataset, range(env.rank, len(dataset), env.world_size))  # type: ignore[arg-type]
    loader = DataLoader(CaptureErrors(shard), batch_size=None, num_workers=num_workers)
    for sample in loader:
        if ERROR_KEY in sample:
            if on_error == "raise":
                raise DataError(f"{sample[ERROR_KEY]} (set data.on_error=skip to skip unreadable samples)")
            log.warning("skipped sample: %s", sample[ERROR_KEY])
            continue
        yield sample


def batch_inputs(group: list[dict], input_view: str, device: torch.device, need_depth: bool, need_labels: bool
                 ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """A group's images, depth maps (when the model uses them) and image labels (for ``class_filter='gt'``)."""
    images = torch.stack([s[input_view] for s in group]).to(device)
    depth = torch.stack([s["depth"] for s in group]).to(device) if need_depth else None
    labels = torch.stack([s["labels"] for s in group]).to(device) if need_labels else None
    return images, depth, labels


@torch.no_grad()
def evaluate(
    model: nn.Module,
    dataset: Dataset,
    input_view: str,
    cfg: InferenceConfig,
    device: torch.device,
    env: DistEnv = DistEnv(),
    num_workers: int = 0,
    on_error: str = "raise",
    progress: bool = True,
    on_batch: Callable[[list[dict], torch.Tensor, torch.Tensor], None] | None = None,
    static_ids: list[int] | None = None,
) -> SegMetrics:
    """mIoU / PixAcc / per-class IoU of ``model`` on ``dataset`` (which yields ``input_view``, ``mask``, ...).

    ``on_batch(samples, probs, labels)`` is called for every batch (e.g. to write predictions). With
    ``cfg.day_pair`` the dataset also yields ``day`` and ``flow``, and ``static_ids`` are the static classes.
    """
    if cfg.day_pair.enabled and static_ids is None:
        raise ValueError("day-night-pair inference needs the static class ids")
    model.eval()
    class_names = tuple(dataset.class_names)  # type: ignore[attr-defined]
    cm = ConfusionMatrix(len(class_names))
    need_depth = uses_depth(model)
    samples = iterate_samples(dataset, env, num_workers, on_error)
    total = len(range(env.rank, len(dataset), env.world_size))  # type: ignore[arg-type]
    bar = tqdm(total=total, desc="eval", disable=not (progress and env.is_main), dynamic_ncols=True, mininterval=2)
    for group in same_size_groups(samples, cfg.batch_size):
        images, depth, labels = batch_inputs(group, input_view, device, need_depth, cfg.class_filter == "gt")
        probs = predict_probs(model, images, cfg, depth=depth, labels=labels)
        pair = tuple(torch.stack([s[k] for s in group]).to(device) for k in ("day", "flow")) \
            if cfg.day_pair.enabled else None
        pred = final_labels(model, probs, images, cfg, pair, static_ids)
        cm.update(pred.cpu(), torch.stack([s["mask"] for s in group]))
        if on_batch is not None:
            on_batch(group, probs, pred)
        bar.update(len(group))
    bar.close()
    all_reduce_sum(cm.mat)
    return cm.compute(class_names)
