"""ASDT's teacher knowledge as hard labels, on CPU with NumPy and the dense CRF: the class-teacher's reliable label
B^ct with reliability mask R^ct (RRM's recipe, wsss-methods.md §1.2), the seg-teacher's label B^st and the naive
fused labels of Table 4. Per image, optionally in a process pool so the training step waits as little as possible.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field

from darkseg.models.ops.crf import CRFConfig, dense_crf, dense_crf_many
from darkseg.schema import StrictModel

IGNORE = 255
#: RRM's ``crf_inference_inf`` settings, used for the seg-teacher's and the fused labels (wsss-methods.md §4)
RRM_INFERENCE_CRF = CRFConfig(bilateral_sxy=83.0, bilateral_srgb=5.0, bilateral_compat=4.0)
Target = Literal["st", "max", "mean"]


class KnowledgeConfig(StrictModel):
    """Reliable-label thresholds and CRFs (RRM defaults, wsss-methods.md §1.2 and §4)."""

    alpha_low: float = Field(4.0, gt=0, description="background (1 − max CAM)^α of the low-alpha CRF (foreground)")
    alpha_high: float = Field(32.0, gt=0, description="α of the high-alpha CRF (background) and of bg32")
    cam_floor: float = Field(0.1, ge=0, lt=1, description="CAM values at or below it never count as sure")
    cam_quantile: float = Field(0.6, ge=0, lt=1, description="sure foreground: above this quantile of its region")
    bg_sure: float = Field(0.8, ge=0, le=1, description="sure background: (1 − max CAM)^α_high above this")
    crf_sure: float = Field(0.8, ge=0, le=1, description="CRF-confident: max CRF probability at least this")
    reliability: bool = Field(True, description="false: B^ct without R^ct (Table 5, row 1)")
    crf: CRFConfig = CRFConfig()
    st_crf: CRFConfig | None = Field(RRM_INFERENCE_CRF, description="CRF of B^st / fused labels; null = argmax")
    workers: int = Field(0, ge=0, description="processes computing the labels; 0 = in the training process")
    scale: float = Field(1.0, gt=0, le=1, description="resolution of the labels relative to the crop (RRM: 1); the "
                         "CRFs' spatial σ scale alike, the labels are upsampled by nearest neighbour")

    def scaled(self, crf: CRFConfig) -> CRFConfig:
        """``crf`` with its spatial σ (pixels) multiplied by ``scale`` (pydensecrf's scale_factor, §4)."""
        return crf.model_copy(update={"gauss_sxy": crf.gauss_sxy * self.scale,
                                      "bilateral_sxy": crf.bilateral_sxy * self.scale})


def normalised_cams(cams: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Present-class CAMs (K, H, W), each divided by its max + 1e-5, and their class ids 1..C-1 (RRM step 1)."""
    present = np.flatnonzero(labels > 0.5)
    sel = np.maximum(cams[present], 0.0).astype(np.float32)
    return sel / (sel.max(axis=(1, 2), keepdims=True) + 1e-5), present + 1


def reliable_label(image: np.ndarray, cams: np.ndarray, labels: np.ndarray, cfg: KnowledgeConfig) -> np.ndarray:
    """B^ct with R^ct applied (pixels outside it = 255), RRM's recipe (wsss-methods.md §1.2, steps 1-6).

    ``image`` uint8 H×W×3 (the crop at ``cfg.scale``: the CRFs' spatial σ are scaled alike), ``cams`` (C−1, H, W)
    at image size, ``labels`` (C−1,) multi-hot. Foreground comes from the low-alpha CRF, background from the
    high-alpha CRF; sure pixels are CAM-confident (top of each class's own CAM region, or strong background) and
    CRF-confident. A class without CAM values above ``cam_floor`` in its region has no sure pixels (the reference
    crashes there).
    """
    height, width = image.shape[:2]
    norm, ids = normalised_cams(cams, labels)
    if len(ids) == 0:
        return np.zeros((height, width), np.uint8)
    ids = np.concatenate([[0], ids])
    peak = norm.max(0)
    bg_high = (1.0 - peak) ** cfg.alpha_high
    cam_arg = np.concatenate([bg_high[None], norm]).argmax(0)
    crf = cfg.scaled(cfg.crf).model_dump()
    low, high = dense_crf_many(image, [np.concatenate([((1.0 - peak) ** cfg.alpha_low)[None], norm]),
                                       np.concatenate([bg_high[None], norm])], **crf)
    low_arg = low.argmax(0)
    label = ids[low_arg].astype(np.uint8)
    label[low_arg == 0] = IGNORE
    label[high.argmax(0) == 0] = 0
    if not cfg.reliability:
        return label
    sure = (cam_arg == 0) & (bg_high > cfg.bg_sure)
    for k in range(1, len(ids)):
        if not (low_arg == k).any():
            continue
        region = cam_arg == k
        values = norm[k - 1][region]
        values = np.sort(values[values > cfg.cam_floor])
        if values.size == 0:
            continue
        sure |= region & (norm[k - 1] > values[int(cfg.cam_quantile * values.size)])
    confident = np.concatenate([high[:1], low[1:]]).max(0) >= cfg.crf_sure
    label[~(sure & confident)] = IGNORE
    return label


def class_teacher_probs(cams: np.ndarray, labels: np.ndarray, alpha: float) -> np.ndarray:
    """P^ct (C, H, W): [(1 − max CAM)^α, normalised present-class CAMs] per pixel summing to 1; absent classes 0."""
    norm, ids = normalised_cams(cams, labels)
    out = np.zeros((len(labels) + 1, *cams.shape[1:]), np.float32)
    out[0] = (1.0 - norm.max(0)) ** alpha if len(ids) else 1.0
    out[ids] = norm
    return out / np.maximum(out.sum(0, keepdims=True), 1e-12)


def hard_label(image: np.ndarray, probs: np.ndarray, labels: np.ndarray, crf: CRFConfig | None) -> np.ndarray:
    """Argmax over background + present classes of ``probs`` (C, H, W), after the dense CRF if given (B^st)."""
    ids = np.concatenate([[0], np.flatnonzero(labels > 0.5) + 1])
    if len(ids) == 1:
        return np.zeros(image.shape[:2], np.uint8)
    kept = np.maximum(probs[ids], 0.0).astype(np.float32)
    kept /= np.maximum(kept.sum(0, keepdims=True), 1e-12)
    if crf is not None:
        kept = dense_crf(image, np.clip(kept, 1e-8, 1.0), **crf.model_dump())
    return ids[kept.argmax(0)].astype(np.uint8)


@dataclass(frozen=True)
class KnowledgeJob:
    """The inputs of one image: uint8 H×W×3 image, (C−1, H, W) CAMs, (C−1,) labels, and, when a student target
    other than B^ct is needed, the seg-teacher's (C, H, W) probabilities and which target to make."""

    image: np.ndarray
    cams: np.ndarray
    labels: np.ndarray
    st_probs: np.ndarray | None = None
    target: Target | None = None


def compute_knowledge(job: KnowledgeJob, cfg: KnowledgeConfig) -> tuple[np.ndarray, np.ndarray | None]:
    """(B^ct, student target) of one image; the target is B^st or the CRF of max/mean(P^ct, P^st) (Table 4)."""
    b_ct = reliable_label(job.image, job.cams, job.labels, cfg)
    if job.target is None or job.st_probs is None:
        return b_ct, None
    probs = job.st_probs
    if job.target != "st":
        p_ct = class_teacher_probs(job.cams, job.labels, cfg.alpha_low)
        probs = np.maximum(p_ct, probs) if job.target == "max" else 0.5 * (p_ct + probs)
    return b_ct, hard_label(job.image, probs, job.labels, None if cfg.st_crf is None else cfg.scaled(cfg.st_crf))


class KnowledgeWorkers:
    """Computes the knowledge of a batch in ``cfg.workers`` spawned processes (or inline with 0 workers).

    ``submit`` returns at once with a callable that waits for the per-image results, so the caller can compute
    the losses that do not need the labels in the meantime.
    """

    def __init__(self, cfg: KnowledgeConfig) -> None:
        self.cfg = cfg
        self._pool: ProcessPoolExecutor | None = None
        if cfg.workers:
            # fork, like DataLoader workers: the workers run NumPy and the CRF only, never torch
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            self._pool = ProcessPoolExecutor(cfg.workers, mp_context=multiprocessing.get_context(method))

    def submit(self, jobs: list[KnowledgeJob]):  # noqa: ANN201 (a zero-argument callable)
        if self._pool is None:
            return lambda: [compute_knowledge(job, self.cfg) for job in jobs]
        futures: list[Future] = [self._pool.submit(compute_knowledge, job, self.cfg) for job in jobs]
        return lambda: [f.result() for f in futures]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
