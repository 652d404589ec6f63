"""The static loss of DANNet/DANIA: the paired day prediction, warped onto the night view and fused with the night
prediction, supervises the night prediction on static classes with a 3×3-neighbourhood focal loss.

Shared by every day→night method (DANIA, DANNet, CCDistill's L_pseudo). The entry point is :func:`static_loss`;
its parts are exposed for tests and for day-night-pair inference (warp + fuse).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from pydantic import Field

from darkseg.align.warp import warp_by_flow
from darkseg.models.ops.argmax import class_argmax
from darkseg.schema import StrictModel

IGNORE_INDEX = 255
_EPS = 1e-7


class FusionConfig(StrictModel):
    """Confidence-adaptive fusion of the warped day and the night prediction, Eq. (10)-(11) of DANIA."""

    enabled: bool = Field(True, description="False = the warped day prediction alone is the pseudo label")
    high: float = Field(0.8, ge=0, le=1, description="h1: day weight where the day probability exceeds threshold")
    low: float = Field(0.6, ge=0, le=1, description="h2: day weight elsewhere")
    threshold: float = Field(0.4, ge=0, le=1, description="θ on the warped day probability")


class StaticLossConfig(StrictModel):
    """Settings of the static loss, Eq. (9)-(13) of DANIA (defaults: the paper's)."""

    gamma: float = Field(1.0, ge=0, description="focusing parameter γ of Eq. (12); 0 = cross-entropy")
    neighbourhood: int = Field(3, ge=1, description="side of the local region of Eq. (13); 1 = plain focal loss")
    fusion: FusionConfig = FusionConfig()
    reweight_labels: bool = Field(True, description="multiply the fused prediction by w (Eq. 2) before the argmax")
    reweight_prediction: bool = Field(True, description="multiply the night probabilities by w inside Eq. (13)")


def class_weights(frequencies: Sequence[float] | torch.Tensor, std: float, avg: float = 1.0) -> torch.Tensor:
    """Class re-weighting w_k = (w'_k − mean w')/sd(w')·std + avg with w'_k = −log a_k, Eq. (1)-(2) of DANIA."""
    a = torch.as_tensor(frequencies, dtype=torch.float64)
    if (a <= 0).any():
        raise ValueError("class frequencies must be positive")
    w0 = -torch.log(a / a.sum())
    return ((w0 - w0.mean()) / w0.std() * std + avg).float()


def warp_day_prediction(day_prob: torch.Tensor, flow: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """P'_td = F(P_td): the day prediction sampled along the night→day flow and its validity, Eq. (9)/(18) of DANIA.

    ``day_prob`` B×C×H×W at the flow's size; ``flow`` B×2×H×W (NaN = no correspondence) or None for the identity
    (DANNet: the pair is taken as aligned). Warped holes are invalid.
    """
    if flow is None:
        b, _, h, w = day_prob.shape
        return day_prob, torch.ones(b, h, w, dtype=torch.bool, device=day_prob.device)
    return warp_by_flow(day_prob, flow)


def fuse_predictions(day_warped: torch.Tensor, night_prob: torch.Tensor, cfg: FusionConfig) -> torch.Tensor:
    """F'_td = h·P'_td + (1 − h)·P_tn with h = h1 where P'_td > θ else h2 (per pixel and class), Eq. (10)-(11)."""
    if not cfg.enabled:
        return day_warped
    h = torch.where(day_warped > cfg.threshold, cfg.high, cfg.low).to(day_warped.dtype)
    return h * day_warped + (1 - h) * night_prob


def day_pair_labels(
    night_prob: torch.Tensor, day_prob: torch.Tensor, flow: torch.Tensor, static_ids: Sequence[int],
    cfg: FusionConfig, weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Labels from a day-night pair at test time, Table 9 of DANIA: the day prediction warped onto the night view
    (Eq. 9) and fused with the night one (Eq. 10-11); the fused label where it is a static class with a
    correspondence, the night label elsewhere. ``weights``: test-time re-weighting (Eq. 2) of both, or None."""
    day_warped, ok = warp_day_prediction(day_prob, flow)
    fused = fuse_predictions(day_warped, night_prob, cfg)
    if weights is not None:
        w = weights.view(1, -1, 1, 1).to(fused)
        fused, night_prob = fused * w, night_prob * w
    fused_label, night_label = class_argmax(fused), class_argmax(night_prob)
    static = torch.zeros(fused.shape[1], dtype=torch.bool, device=fused.device)
    static[torch.as_tensor(list(static_ids), dtype=torch.long, device=fused.device)] = True
    return torch.where(ok & static[fused_label], fused_label, night_label)


def pseudo_labels(
    fused: torch.Tensor, valid: torch.Tensor, static_ids: Sequence[int], weights: torch.Tensor | None
) -> torch.Tensor:
    """Pseudo label: argmax over all classes of w ⊙ F'_td (Eq. 2 applied to the fusion of Eq. 10); pixels that win a
    dynamic class, or are warped holes, are 255. Returned as indices into ``static_ids`` (B×H×W, int64)."""
    scores = fused * weights.view(1, -1, 1, 1).to(fused) if weights is not None else fused
    label = class_argmax(scores)
    lookup = torch.full((fused.shape[1],), IGNORE_INDEX, dtype=torch.long, device=fused.device)
    lookup[torch.as_tensor(list(static_ids), dtype=torch.long, device=fused.device)] = torch.arange(
        len(static_ids), device=fused.device)
    out = lookup[label]
    return out.masked_fill(~valid, IGNORE_INDEX)


def neighbourhood_focal_loss(
    night_static_prob: torch.Tensor,
    labels: torch.Tensor,
    gamma: float = 1.0,
    weights: torch.Tensor | None = None,
    size: int = 3,
) -> torch.Tensor:
    """−1/N Σ_i (1 − p_i)^γ log p_i with p_i = max_{c ∈ labels of the size×size region at i} w_c·P^S_tn(c, i),
    Eq. (12)-(13) of DANIA; N = pixels whose own label is valid; neighbours labelled 255 are skipped.

    ``night_static_prob`` B×Cs×H×W (probabilities over the static classes), ``labels`` B×H×W indices into them
    (255 = ignore), ``weights`` (Cs,) or None. Returns 0 (with a graph) when no pixel is valid.
    """
    cs = night_static_prob.shape[1]
    valid = labels != IGNORE_INDEX
    onehot = F.one_hot(labels.masked_fill(~valid, 0), cs).permute(0, 3, 1, 2).to(night_static_prob.dtype)
    onehot = onehot * valid.unsqueeze(1)
    present = F.max_pool2d(onehot, size, stride=1, padding=size // 2) if size > 1 else onehot
    prob = night_static_prob * weights.view(1, -1, 1, 1).to(night_static_prob) if weights is not None \
        else night_static_prob
    p = (present * prob).amax(1).clamp(_EPS, 1 - _EPS)
    per_pixel = -((1 - p) ** gamma) * torch.log(p)
    count = valid.sum()
    return (per_pixel * valid).sum() / count.clamp_min(1)


def static_loss(
    night_logits: torch.Tensor,
    day_logits: torch.Tensor,
    static_ids: Sequence[int],
    weights: torch.Tensor | None,
    cfg: StaticLossConfig,
    flow: torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
    size: tuple[int, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """L_static of DANIA, Eq. (9)-(13): returns the loss and the B×H×W pseudo labels (indices into ``static_ids``).

    ``night_logits``/``day_logits``: B×C×h×w over all classes (the day ones are detached here). Both are upsampled
    bilinearly to the flow's size (or ``size``, else left as they are). ``flow``: B×2×H×W night→day (NaN = none);
    None = identity (DANNet, or day logits already warped by the caller). ``valid``: optional B×H×W mask of pixels
    that may be supervised (e.g. the caller's own warp holes); ``weights``: the (C,) class weights of Eq. (2) or None.
    Gradients flow only through the night static-class probabilities (renormalised over the static classes).
    """
    if flow is not None:
        size = tuple(flow.shape[-2:])
    if size is not None and tuple(night_logits.shape[-2:]) != tuple(size):
        night_logits = F.interpolate(night_logits, size=size, mode="bilinear", align_corners=False)
    day_logits = day_logits.detach()
    if tuple(day_logits.shape[-2:]) != tuple(night_logits.shape[-2:]):
        day_logits = F.interpolate(day_logits, size=night_logits.shape[-2:], mode="bilinear", align_corners=False)
    day_warped, ok = warp_day_prediction(day_logits.float().softmax(1), flow)
    if valid is not None:
        ok = ok & valid
    fused = fuse_predictions(day_warped, night_logits.detach().float().softmax(1), cfg.fusion)
    labels = pseudo_labels(fused, ok, static_ids, weights if cfg.reweight_labels else None)
    ids = torch.as_tensor(list(static_ids), dtype=torch.long, device=night_logits.device)
    night_static = night_logits.float().index_select(1, ids).softmax(1)
    static_w = weights.to(night_static).index_select(0, ids) if (weights is not None and cfg.reweight_prediction) \
        else None
    return neighbourhood_focal_loss(night_static, labels, cfg.gamma, static_w, cfg.neighbourhood), labels
