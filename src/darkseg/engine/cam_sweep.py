"""Standard WSSS CAM evaluation: class maps of a split, pseudo masks by background threshold, a threshold sweep."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset
from tqdm import tqdm

from darkseg.data.io import write_palette_png
from darkseg.engine.distributed import DistEnv
from darkseg.engine.evaluator import iterate_samples, uses_depth
from darkseg.metrics import ConfusionMatrix


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
    return torch.cat([bg, fg]).argmax(0)


def sweep(
    model: nn.Module, dataset: Dataset, input_view: str, device: torch.device, out_dir: Path,
    thresholds: list[float], num_workers: int = 0, on_error: str = "raise", flip: bool = True,
    scales: tuple[float, ...] = (1.0,), minmax: bool = False,
) -> dict:
    """CAMs (float16 .npy) of every sample, the mIoU per background threshold, and pseudo masks at the best one."""
    model.eval()
    names = tuple(dataset.class_names)  # type: ignore[attr-defined]
    cms = {t: ConfusionMatrix(len(names)) for t in thresholds}
    cam_dir = out_dir / "cams"
    cam_dir.mkdir(parents=True, exist_ok=True)
    ids = []
    depth_needed = uses_depth(model)
    samples = iterate_samples(dataset, DistEnv(), num_workers, on_error)
    for s in tqdm(samples, total=len(dataset), desc="cam", dynamic_ncols=True, mininterval=2):  # type: ignore[arg-type]
        image = s[input_view][None].to(device)
        depth = s["depth"][None].to(device) if depth_needed else None
        fg = class_maps(model, image, s["labels"].to(device), depth, flip, scales, minmax).cpu()
        np.save(cam_dir / f"{s['id']}.npy", fg.numpy().astype(np.float16))
        ids.append(s["id"])
        for t, cm in cms.items():
            cm.update(pseudo_mask(fg, t), s["mask"])
    results = {f"{t:.2f}": cm.compute(names).miou for t, cm in cms.items()}
    best_t = max(cms, key=lambda t: results[f"{t:.2f}"])
    mask_dir = out_dir / f"pseudo_masks_bg{best_t:.2f}"
    mask_dir.mkdir(exist_ok=True)
    for sid in ids:
        fg = torch.from_numpy(np.load(cam_dir / f"{sid}.npy").astype(np.float32))
        write_palette_png(mask_dir / f"{sid}.png", pseudo_mask(fg, best_t).numpy().astype(np.uint8))
    best = cms[best_t].compute(names)
    return {"miou_per_threshold": results, "best_threshold": best_t, "best_miou": best.miou,
            "best_per_class_iou": best.iou, "pseudo_masks": str(mask_dir), "cams": str(cam_dir)}
