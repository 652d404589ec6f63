"""Standard WSSS CAM evaluation: class maps of a split, pseudo masks by background threshold, a threshold sweep,
and the score of a trained run by that protocol (``cam_score``: CAM mIoU on the train split at the best threshold)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, Subset
from tqdm import tqdm

from darkseg.data.io import write_palette_png
from darkseg.engine.distributed import DistEnv
from darkseg.engine.evaluator import iterate_samples, uses_depth
from darkseg.metrics import IGNORE_INDEX, segmentation_metrics
from darkseg.models.ops.argmax import class_argmax

if TYPE_CHECKING:
    from darkseg.config import ExperimentConfig

#: the background thresholds ``cam_score`` sweeps: 0.00 … 0.95 in steps of 0.01 (SEAM's curve is 0.00 … 0.59; the
#: wider range also holds the best threshold of maps that are not min-max normalised or of softmax masks)
SCORE_THRESHOLDS: tuple[float, ...] = tuple(round(0.01 * i, 2) for i in range(96))


@torch.no_grad()
def class_maps(model: nn.Module, image: torch.Tensor, labels: torch.Tensor, depth: torch.Tensor | None,
               flip: bool = True, scales: tuple[float, ...] = (1.0,), minmax: bool = False) -> torch.Tensor:
    """Foreground maps (C-1, H, W) in [0, 1]: the model's masks at each scale (± flip), resized to the input size and
    summed, zeroed for classes absent from the image labels (the usual CAM protocol uses the ground-truth labels),
    then normalised per class by the max, or with ``minmax`` by SEAM's (x − min − 1e-5)/(max − min + 1e-5) ≥ 0."""
    h, w = image.shape[-2:]
    total = torch.zeros(())
    for s in scales:
        size = (max(1, round(h * s)), max(1, round(w * s)))
        x = image if size == (h, w) else F.interpolate(image, size=size, mode="bilinear", align_corners=False)
        d = depth if depth is None or size == (h, w) else F.interpolate(depth, size=size, mode="bilinear",
                                                                       align_corners=False)
        x = torch.cat([x, x.flip(-1)]) if flip else x
        d = None if d is None else (torch.cat([d, d.flip(-1)]) if flip else d)
        masks = model(x, d)["masks"].float() if d is not None else model(x)["masks"].float()
        masks = F.interpolate(masks, size=(h, w), mode="bilinear", align_corners=False)
        if flip:
            masks = masks[:1] + masks[1:].flip(-1)
        total = total.to(masks) + masks[0, 1:].clamp_min(0)
    fg = total * labels.view(-1, 1, 1).to(total.dtype)
    hi = fg.flatten(1).amax(1)[:, None, None]
    if minmax:
        lo = fg.flatten(1).amin(1)[:, None, None]
        return F.relu(fg - lo - 1e-5) / (hi - lo + 1e-5)
    return fg / hi.clamp_min(1e-6)


def pseudo_mask(fg: torch.Tensor, threshold: float) -> torch.Tensor:
    """Label map: argmax over [threshold, fg maps] (background wins where no class exceeds the threshold)."""
    bg = torch.full_like(fg[:1], threshold)
    return class_argmax(torch.cat([bg, fg]), 0)


def threshold_confusions(fg: torch.Tensor, mask: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Confusion matrices (T, C, C) (rows ground truth) of ``pseudo_mask(fg, t)`` against ``mask`` for every sorted
    threshold t at once: a pixel is foreground (its argmax class) exactly for the thresholds below its largest map."""
    num_classes = fg.shape[0] + 1
    valid = mask.reshape(-1) != IGNORE_INDEX
    gt = mask.reshape(-1)[valid].long()
    if gt.numel() and (int(gt.min()) < 0 or int(gt.max()) >= num_classes):
        raise ValueError(f"ground-truth label outside [0, {num_classes}) and not {IGNORE_INDEX}")
    maps = fg.reshape(num_classes - 1, -1)[:, valid]
    top, cls = maps.max(0)
    cls = cls + 1
    below = torch.searchsorted(thresholds.to(fg.dtype).contiguous(), top.contiguous())  # thresholds < each pixel
    n = len(thresholds) + 1
    as_bg = torch.bincount(below * num_classes + gt, minlength=n * num_classes).view(n, num_classes)
    as_fg = torch.bincount((below * num_classes + gt) * num_classes + cls, minlength=n * num_classes**2)
    as_fg = as_fg.view(n, num_classes, num_classes)
    out = as_fg.flip(0).cumsum(0).flip(0)[1:]  # threshold j: foreground where more than j thresholds lie below
    out[:, :, 0] += as_bg.cumsum(0)[:-1]  # background where at most j do
    return out


def _confusions(
    model: nn.Module, samples: Iterable[dict], total: int, num_classes: int, input_view: str, device: torch.device,
    thresholds: list[float], flip: bool, scales: tuple[float, ...], minmax: bool, cam_dir: Path | None,
    progress: bool = True,
) -> tuple[dict[float, torch.Tensor], list[str]]:
    """The confusion matrix of every threshold over ``samples`` (their CAMs saved in ``cam_dir`` if given)."""
    order = sorted(thresholds)
    depth_needed = uses_depth(model)
    mats, ids = torch.zeros(len(order), num_classes, num_classes, dtype=torch.int64), []
    for s in tqdm(samples, total=total, desc="cam", dynamic_ncols=True, mininterval=2, disable=not progress):
        image = s[input_view][None].to(device)
        depth = s["depth"][None].to(device) if depth_needed else None
        fg = class_maps(model, image, s["labels"].to(device), depth, flip, scales, minmax).cpu()
        if cam_dir is not None:
            np.save(cam_dir / f"{s['id']}.npy", fg.numpy().astype(np.float16))
        ids.append(s["id"])
        mats += threshold_confusions(fg, s["mask"], torch.tensor(order))
    return dict(zip(order, mats, strict=True)), ids


def sweep(
    model: nn.Module, dataset: Dataset, input_view: str, device: torch.device, out_dir: Path,
    thresholds: list[float], num_workers: int = 0, on_error: str = "raise", flip: bool = True,
    scales: tuple[float, ...] = (1.0,), minmax: bool = False,
) -> dict:
    """CAMs (float16 .npy) of every sample, the mIoU per background threshold, and pseudo masks at the best one."""
    model.eval()
    names = tuple(dataset.class_names)  # type: ignore[attr-defined]
    cam_dir = out_dir / "cams"
    cam_dir.mkdir(parents=True, exist_ok=True)
    samples = iterate_samples(dataset, DistEnv(), num_workers, on_error)
    mats, ids = _confusions(model, samples, len(dataset), len(names), input_view, device,  # type: ignore[arg-type]
                            thresholds, flip, scales, minmax, cam_dir)
    results = {f"{t:.2f}": segmentation_metrics(mats[t].numpy(), names).miou for t in thresholds}
    best_t = max(thresholds, key=lambda t: results[f"{t:.2f}"])
    mask_dir = out_dir / f"pseudo_masks_bg{best_t:.2f}"
    mask_dir.mkdir(exist_ok=True)
    for sid in ids:
        fg = torch.from_numpy(np.load(cam_dir / f"{sid}.npy").astype(np.float32))
        write_palette_png(mask_dir / f"{sid}.png", pseudo_mask(fg, best_t).numpy().astype(np.uint8))
    best = segmentation_metrics(mats[best_t].numpy(), names)
    return {"miou_per_threshold": results, "best_threshold": best_t, "best_miou": best.miou,
            "best_per_class_iou": best.iou, "pseudo_masks": str(mask_dir), "cams": str(cam_dir)}


def cam_score(
    cfg: ExperimentConfig, run_dir: Path, split: str | None, *, scales: tuple[float, ...] = (1.0,),
    flip: bool = True, minmax: bool = True, thresholds: tuple[float, ...] = SCORE_THRESHOLDS,
    max_images: int | None = None,
) -> dict:
    """The CAM protocol's score of a trained run (``run_dir/model_final.safetensors``): class maps of ``split``
    (default ``train``: the CAM seeds of WSSS papers, e.g. PLDA Tab. I), the background threshold whose mIoU is best
    on that same split's sweep, and the metrics at it (``per_class_iou`` at the best threshold, ``bg_threshold``).
    ``max_images`` scores the first images of the split only (a fixed subset, the same for every run)."""
    from darkseg.data.registry import build_dataset
    from darkseg.data.transforms import EvalTransform
    from darkseg.engine.runner import eval_views, input_view_of, load_deployed, setup_runtime

    split = split or "train"
    device, _ = setup_runtime(cfg)
    model = load_deployed(cfg, run_dir / "model_final.safetensors", device).eval()
    view = input_view_of(cfg)
    dataset = build_dataset(cfg.data, split, eval_views(model, view), EvalTransform())
    names = tuple(dataset.class_names)  # type: ignore[attr-defined]
    n = len(dataset) if max_images is None else min(max_images, len(dataset))  # type: ignore[arg-type]
    samples = iterate_samples(Subset(dataset, range(n)), DistEnv(), cfg.data.num_workers, cfg.data.on_error)
    mats, _ = _confusions(model, samples, n, len(names), view, device, list(thresholds), flip, scales, minmax,
                          None, progress=False)
    per_threshold = {t: segmentation_metrics(m.numpy(), names) for t, m in mats.items()}
    best_t = max(per_threshold, key=lambda t: per_threshold[t].miou)
    best = per_threshold[best_t]
    curve = {f"{t:.2f}": m.miou for t, m in per_threshold.items()}
    return {"split": split, **best.to_dict(), "bg_threshold": best_t, "images": n, "scales": list(scales),
            "flip": flip, "minmax": minmax, "miou_per_threshold": curve}
