"""Pseudo masks of a trained (weakly supervised) model for a split, as a VOC-layout mask folder.

Each image is segmented with the config's multi-scale × flip inference (``eval.inference``), foreground classes
absent from the image labels zeroed (``class_filter="gt"``, the WSSS convention), optionally refined by a dense CRF,
and written as ``OUT/<id>.png`` (palette PNG, class ids, 255 = ignore) atomically. Existing masks are kept, so an
interrupted run resumes. Used by ``darkseg pseudo`` and by the two-stage columns of ``darkseg reproduce``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from darkseg.data.base import check_mask_values
from darkseg.data.io import read_mask, write_palette_png
from darkseg.data.registry import build_dataset
from darkseg.data.transforms import EvalTransform
from darkseg.engine.inference import labels_from_probs, predict_probs
from darkseg.engine.runner import input_view_of, load_deployed, setup_runtime
from darkseg.errors import DarksegError, DataError
from darkseg.fileio import atomic_write
from darkseg.metrics import ConfusionMatrix, SegMetrics
from darkseg.models.ops.crf import CRFConfig

if TYPE_CHECKING:
    from darkseg.config import ExperimentConfig


def check_out(out: Path, dataset: object) -> None:
    """Refuse an output folder that is one of the dataset's own folders (ground-truth masks, images)."""
    root = getattr(dataset, "root", None)
    for view, folder in getattr(dataset, "folders", {}).items():
        if root is not None and out.resolve() == (Path(root) / folder).resolve():
            raise DarksegError(f"{out}: is the dataset's {view} folder; pseudo masks would overwrite it, "
                               "choose another output folder")


def write_pseudo_masks(
    cfg: ExperimentConfig,
    weights: Path | None,
    split: str,
    out: Path,
    class_filter: str = "gt",
    crf: bool = False,
) -> tuple[int, int, SegMetrics | None]:
    """Write ``out/<id>.png`` for every image of ``split`` that has none yet (module docstring).

    Returns (written, kept, metrics of all the split's pseudo masks against its ground truth or None).
    """
    infer = cfg.eval.inference.model_copy(update={"class_filter": class_filter})
    if crf:
        infer = infer.model_copy(update={"crf": infer.crf or CRFConfig()})
    device, _ = setup_runtime(cfg)
    model = load_deployed(cfg, weights, device)
    view = input_view_of(cfg)
    views = (view, "labels") + (("depth",) if getattr(model, "uses_depth", False) else ())
    try:
        dataset = build_dataset(cfg.data, split, views + ("mask",), EvalTransform())
        has_gt = True
    except DataError:  # no ground-truth mask folder: label without scoring
        dataset = build_dataset(cfg.data, split, views, EvalTransform())
        has_gt = False
    check_out(out, dataset)
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(".*.tmp"):  # temporaries of a killed run
        stale.unlink()
    names = tuple(dataset.class_names)
    cm = ConfusionMatrix(len(names))
    written = kept = 0
    for i, sid in enumerate(dataset.ids):
        path = out / f"{sid}.png"
        sample = dataset[i]
        if path.is_file():
            existing = read_mask(path)
            check_mask_values(existing, len(names), path)
            pred = torch.from_numpy(existing.astype(np.int64))
            kept += 1
        else:
            x = sample[view][None].to(device)
            depth = sample["depth"][None].to(device) if "depth" in sample else None
            labels = sample["labels"][None].to(device)
            probs = predict_probs(model, x, infer, depth=depth, labels=labels)
            pred = labels_from_probs(probs, x, infer)[0].cpu()
            mask = pred.numpy().astype(np.uint8)
            atomic_write(path, lambda tmp, m=mask: write_palette_png(tmp, m))
            written += 1
        if has_gt:
            if pred.shape != sample["mask"].shape:
                raise DataError(f"{path}: size {tuple(pred.shape)} differs from the ground truth "
                                f"{tuple(sample['mask'].shape)}; delete it and rerun")
            cm.update(pred[None], sample["mask"][None])
    return written, kept, cm.compute(names) if has_gt else None
