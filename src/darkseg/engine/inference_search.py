"""Inference thresholds (class filter, background power) chosen on a validation split, never on the test split."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn
from torch.utils.data import Dataset

from darkseg.engine.config import InferenceConfig, InferenceSearchConfig
from darkseg.engine.distributed import DistEnv, all_reduce_sum
from darkseg.engine.evaluator import batch_inputs, iterate_samples, same_size_groups, uses_depth
from darkseg.engine.inference import filter_classes, kept_classes, labels_from_probs, merged_masks
from darkseg.errors import ConfigError
from darkseg.metrics import ConfusionMatrix


def candidates(base: InferenceConfig, search: InferenceSearchConfig) -> list[InferenceConfig]:
    """Every (class filter, background power) setting of the search grid, the rest of ``base`` kept; a ``base``
    that filters by the ground-truth image labels keeps that filter and only the background power is searched."""
    if base.class_filter == "gt":
        filters = [("gt", base.score_cut)]
    else:
        filters = [("pred", c) for c in search.score_cuts] + ([("none", base.score_cut)] if search.no_filter else [])
    return [base.model_copy(update={"class_filter": f, "score_cut": cut, "bg_pow": p})
            for f, cut in filters for p in search.bg_pows]


def grid_labels(masks: torch.Tensor, scores: torch.Tensor | None, grid: list[InferenceConfig],
                labels: torch.Tensor | None = None) -> Iterator[torch.Tensor]:
    """The label maps of every setting of ``grid``, in order, equal to ``labels_from_probs(filter_classes(masks,
    scores, setting, labels), None, setting)`` for settings without re-weighting and CRF.

    The argmax over [background ** p, kept foreground] is the background wherever background ** p >= the largest
    kept foreground value (it is the first channel, so it wins ties, and NaN counts as largest), else 1 + the
    foreground argmax. So the C-channel maximum is taken once per class filter, and each background power costs
    one comparison of (B, H, W) maps (``python benchmarks/bench_inference_search.py``).
    """
    last_filter, fg_max, fg_arg = None, None, None
    for setting in grid:
        if setting.crf is not None or setting.reweight is not None:
            raise ValueError("grid_labels: re-weighting and CRF settings go through labels_from_probs")
        key = (setting.class_filter, setting.score_cut)
        if key != last_filter:
            fg = masks[:, 1:] * kept_classes(masks, scores, setting, labels)[:, 1:, None, None]
            fg_max, fg_arg = fg.max(1)
            last_filter = key
        bg = masks[:, 0].clamp_min(0) ** setting.bg_pow
        yield torch.where((bg >= fg_max) | bg.isnan(), 0, fg_arg + 1)


@torch.no_grad()
def search_inference(
    model: nn.Module,
    dataset: Dataset,
    input_view: str,
    base: InferenceConfig,
    search: InferenceSearchConfig,
    device: torch.device,
    env: DistEnv = DistEnv(),
    num_workers: int = 0,
    on_error: str = "raise",
) -> tuple[InferenceConfig, list[tuple[InferenceConfig, float]]]:
    """The grid setting with the best mIoU on ``dataset`` (the first on ties) and every setting's mIoU.

    The network runs once per batch (:func:`merged_masks`); only the class filter and the background power are
    applied per setting (:func:`grid_labels`, or :func:`filter_classes` and :func:`labels_from_probs` with
    re-weighting or CRF), and the ground truth is prepared once per batch for every setting's confusion matrix.
    """
    if base.day_pair.enabled:
        raise ConfigError("eval.inference_search cannot be combined with eval.inference.day_pair")
    grid = candidates(base, search)
    model.eval()
    class_names = tuple(dataset.class_names)  # type: ignore[attr-defined]
    matrices = [ConfusionMatrix(len(class_names)) for _ in grid]
    need_depth = uses_depth(model)
    for group in same_size_groups(iterate_samples(dataset, env, num_workers, on_error), base.batch_size):
        images, depth, labels = batch_inputs(group, input_view, device, need_depth, base.class_filter == "gt")
        offsets = matrices[0].target_offsets(torch.stack([s["mask"] for s in group]))
        masks, scores = merged_masks(model, images, base, depth)
        if scores is None and any(c.class_filter == "pred" for c in grid):
            raise ConfigError("eval.inference_search.score_cuts: this model has no class scores; set "
                              "score_cuts: [] and no_filter: true")
        preds = grid_labels(masks, scores, grid, labels) if base.crf is None and base.reweight is None else (
            labels_from_probs(filter_classes(masks, scores, cand, labels), images, cand) for cand in grid)
        for pred, cm in zip(preds, matrices):
            cm.update_from_offsets(pred, offsets)
    scored = []
    for cand, cm in zip(grid, matrices):
        all_reduce_sum(cm.mat)
        scored.append((cand, cm.compute(class_names).miou))
    best = max(scored, key=lambda cs: cs[1])  # max keeps the first of equal values
    return best[0], scored


def describe(chosen: InferenceConfig, split: str, miou: float) -> dict:
    """The record of a chosen setting that evaluation results carry."""
    return {"selected_on": split, "class_filter": chosen.class_filter,
            "score_cut": chosen.score_cut if chosen.class_filter == "pred" else None,
            "bg_pow": chosen.bg_pow, "selection_miou": miou}


def setting_words(record: dict) -> str:
    """A chosen setting (a :func:`describe` record) in words, e.g. ``score > 0.3, background ** 0.5``."""
    cut = f"score > {record['score_cut']:g}" if record["class_filter"] == "pred" else record["class_filter"]
    return f"{cut}, background ** {record['bg_pow']:g}"
