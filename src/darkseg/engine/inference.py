"""Multi-scale × flip inference of a segmenter as one batch, class filtering, background power, dense CRF."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from darkseg.engine.config import InferenceConfig
from darkseg.models.ops.argmax import class_argmax


def _versions(x: torch.Tensor, scales: list[float], flip: bool, mode: str) -> list[tuple[torch.Tensor, bool]]:
    """Rescaled (and flipped) copies of a batch, with their flip flags."""
    h, w = x.shape[-2:]
    out = []
    for s in scales:
        size = (max(1, round(h * s)), max(1, round(w * s)))
        y = x if size == (h, w) else F.interpolate(x, size=size, mode=mode, align_corners=False)
        out.append((y, False))
        if flip:
            out.append((y.flip(-1), True))
    return out


def _pad_to(x: torch.Tensor, size: tuple[int, int], value: torch.Tensor | float) -> torch.Tensor:
    """Pad bottom/right to ``size`` with a per-channel value."""
    ph, pw = size[0] - x.shape[-2], size[1] - x.shape[-1]
    if ph == 0 and pw == 0:
        return x
    out = torch.empty(*x.shape[:-2], *size, dtype=x.dtype, device=x.device)
    out[...] = value.view(1, -1, 1, 1) if isinstance(value, torch.Tensor) else value
    out[..., : x.shape[-2], : x.shape[-1]] = x
    return out


@torch.no_grad()
def merged_masks(
    model: nn.Module, image: torch.Tensor, cfg: InferenceConfig, depth: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Masks (B, C, H, W) of a batch of same-size images in [0, 1] averaged over scales and flips, and the class
    scores sigmoid(cls) (B, C - 1) maxed over the versions (None when the model has no classifier).

    Steps (ssss.md §5): every version padded to a common size with the mean colour and run as one batch;
    masks resized back and unflipped; average over versions.
    """
    b, _, h, w = image.shape
    versions = _versions(image, cfg.scales, cfg.flip, "bicubic")
    dversions = _versions(depth, cfg.scales, cfg.flip, "bilinear") if depth is not None else None
    stride = 8
    ph = max(math.ceil(v.shape[-2] / stride) * stride for v, _ in versions)
    pw = max(math.ceil(v.shape[-1] / stride) * stride for v, _ in versions)
    mean = model.mean.to(image.dtype).view(-1)
    batch = torch.cat([_pad_to(v.clamp(0, 1), (ph, pw), mean) for v, _ in versions])
    dbatch = torch.cat([_pad_to(d, (ph, pw), 0.0) for d, _ in dversions]) if dversions is not None else None
    out = model(batch, dbatch) if dbatch is not None else model(batch)
    masks = F.interpolate(out["masks"].float(), size=(ph, pw), mode="bilinear", align_corners=False)
    num_versions = len(versions)
    masks = masks.view(num_versions, b, *masks.shape[1:])
    scores = torch.sigmoid(out["cls"].float()).view(num_versions, b, -1).amax(0) if "cls" in out else None
    merged = torch.zeros(b, masks.shape[2], h, w, dtype=masks.dtype, device=masks.device)
    for i, (v, flipped) in enumerate(versions):
        m = masks[i][..., : v.shape[-2], : v.shape[-1]]
        m = F.interpolate(m, size=(h, w), mode="bilinear", align_corners=False)
        merged += m.flip(-1) if flipped else m
    return merged / num_versions, scores


def kept_classes(masks: torch.Tensor, scores: torch.Tensor | None, cfg: InferenceConfig,
                 labels: torch.Tensor | None = None) -> torch.Tensor:
    """(B, C) in ``masks.dtype``: 1 for the background and every class the class filter keeps (predicted score >
    ``score_cut``, the ground-truth image labels, or all), 0 for the others."""
    b = masks.shape[0]
    if cfg.class_filter == "pred":
        if scores is None:
            raise ValueError("class_filter='pred' needs a model with class scores; use class_filter=none")
        present = (scores > cfg.score_cut).to(masks.dtype)
    elif cfg.class_filter == "gt":
        if labels is None:
            raise ValueError("class_filter='gt' needs the image labels")
        present = labels.to(masks.dtype)
    else:
        present = torch.ones(b, masks.shape[1] - 1, dtype=masks.dtype, device=masks.device)
    return torch.cat([torch.ones_like(present[:, :1]), present], dim=1)


def filter_classes(masks: torch.Tensor, scores: torch.Tensor | None, cfg: InferenceConfig,
                   labels: torch.Tensor | None = None) -> torch.Tensor:
    """Foreground channels of absent classes zeroed (:func:`kept_classes`), then background ** ``bg_pow``
    (ssss.md §5)."""
    probs = masks * kept_classes(masks, scores, cfg, labels)[:, :, None, None]
    probs[:, 0] = probs[:, 0].clamp_min(0) ** cfg.bg_pow
    return probs


@torch.no_grad()
def predict_probs(
    model: nn.Module,
    image: torch.Tensor,
    cfg: InferenceConfig,
    depth: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """Class probabilities (B, C, H, W) of a batch of same-size images in [0, 1]: :func:`merged_masks` over scales
    and flips, then :func:`filter_classes` (absent classes zeroed, background ** bg_pow)."""
    masks, scores = merged_masks(model, image, cfg, depth)
    return filter_classes(masks, scores, cfg, labels)


def pair_labels(model: nn.Module, night_probs: torch.Tensor, day: torch.Tensor, flow: torch.Tensor,
                cfg: InferenceConfig, static_ids: list[int]) -> torch.Tensor:
    """Label maps from day-night pairs (DANIA Table 9): the day images' prediction (same inference settings) warped
    along ``flow`` onto the night view and fused with ``night_probs``; static classes only (see DayPairConfig)."""
    from darkseg.methods.static_loss import class_weights, day_pair_labels

    if cfg.crf is not None:
        raise ValueError("eval.inference: day_pair and crf cannot be combined")
    day_probs = predict_probs(model, day, cfg)
    r = cfg.reweight
    weights = class_weights(r.frequencies, r.std, r.avg).to(night_probs.device) if r is not None else None
    return day_pair_labels(night_probs, day_probs, flow, static_ids, cfg.day_pair.fusion, weights)


def final_labels(model: nn.Module, probs: torch.Tensor, images: torch.Tensor | None, cfg: InferenceConfig,
                 pair: tuple[torch.Tensor, torch.Tensor] | None = None,
                 static_ids: list[int] | None = None) -> torch.Tensor:
    """The label maps every evaluation path writes: from the day-night ``pair`` (day images, flow) when
    ``cfg.day_pair`` is on (:func:`pair_labels`), else :func:`labels_from_probs`."""
    if not cfg.day_pair.enabled:
        return labels_from_probs(probs, images, cfg)
    if pair is None or static_ids is None:
        raise ValueError("day-night-pair inference needs the day images, the flow and the static class ids")
    return pair_labels(model, probs, pair[0], pair[1], cfg, static_ids)


def reweight_probs(probs: torch.Tensor, cfg: InferenceConfig) -> torch.Tensor:
    """Test-time class re-weighting (DANNet/DANIA): probabilities × w of Eq. (1)-(2) of DANIA, when configured."""
    if cfg.reweight is None:
        return probs
    from darkseg.methods.static_loss import class_weights

    w = class_weights(cfg.reweight.frequencies, cfg.reweight.std, cfg.reweight.avg)
    if w.numel() != probs.shape[1]:
        raise ValueError(f"eval.inference.reweight.frequencies: {w.numel()} values for {probs.shape[1]} classes")
    return probs * w.view(1, -1, 1, 1).to(probs)


def labels_from_probs(probs: torch.Tensor, images: torch.Tensor | None, cfg: InferenceConfig) -> torch.Tensor:
    """Argmax label maps (B, H, W), after the test-time re-weighting and the dense CRF when configured."""
    probs = reweight_probs(probs, cfg)
    if cfg.crf is None:
        return class_argmax(probs)
    from darkseg.models.ops.crf import dense_crf

    if images is None:
        raise ValueError("the dense CRF needs the input images")
    out = []
    for p, img in zip(probs, images):
        rgb = (img.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
        q = p.clamp_min(1e-8)
        q = (q / q.sum(0, keepdim=True)).cpu().numpy().astype(np.float32)
        refined = dense_crf(np.ascontiguousarray(rgb), q, **cfg.crf.model_dump())
        out.append(class_argmax(torch.from_numpy(refined), 0))
    return torch.stack(out).to(probs.device)
