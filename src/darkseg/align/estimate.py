"""Day→night image alignment: a coarse homography (OpenCV features + RANSAC) refined by dense DIS optical flow.

Convention: a flow maps each night pixel (x, y) to the day pixel (x + u, y + v) that shows the same place, so
``day(p + flow(p))`` is the day image warped onto the night view (DANIA Eq. 9 warps the day prediction this way);
``flow_back`` is the reverse (day → night, DANIA Eq. 20). NaN marks pixels without a correspondence (outside the
other image). Both images are contrast-normalised (CLAHE on the grey level) first: a night image is too dark and
noisy for features or brightness constancy otherwise. Where the forward and backward fine flows disagree (lighting
that breaks brightness constancy: dark sky, lamp pools), a pixel keeps the homography's displacement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from pydantic import Field

from darkseg.schema import StrictModel


class AlignConfig(StrictModel):
    """Settings of ``darkseg align`` (also the identity of a cache: another config is refused)."""

    max_side: int = Field(640, ge=32, description="larger images are aligned at this long side (pixels)")
    min_side: int = Field(256, ge=32, description="smaller images are upsampled to this long side (features need "
                          "a few pixels per structure)")
    model: Literal["homography", "similarity"] = Field(
        "homography", description="coarse model: homography (DANIA) or similarity (zoom, rotation, shift; fewer "
        "matches needed)")
    features: Literal["sift", "orb"] = "sift"
    ratio: float = Field(0.8, gt=0, le=1, description="Lowe ratio test for feature matches")
    ransac_threshold: float = Field(3.0, gt=0, description="RANSAC reprojection threshold (pixels at max_side)")
    min_inliers: int | None = Field(None, ge=3, description="fewer RANSAC inliers: the pair fails (None: 8 for a "
                                    "homography, 6 for a similarity)")
    min_inlier_ratio: float = Field(0.2, ge=0, le=1, description="lower inlier/match ratio: the pair fails")
    max_photo_ratio: float = Field(1.0, gt=0, description="photometric error after the homography / without "
                                   "alignment above this: the pair fails (the warp made the images differ more)")
    dis_preset: Literal["ultrafast", "fast", "medium"] = "medium"
    consistency: float = Field(1.0, gt=0, description="forward-backward error (image pixels) above which the fine "
                               "flow of a pixel is replaced by the homography's")
    clahe_clip: float = Field(3.0, gt=0)


@dataclass
class Alignment:
    """The result for one pair at working resolution (``scale`` = working size / image size)."""

    ok: bool
    reason: str
    homography: np.ndarray | None  # 3×3, night working coords -> day working coords
    fine: np.ndarray | None  # H×W×2 float32 night -> day displacement (working resolution)
    fine_back: np.ndarray | None  # day -> night
    scale: float
    quality: dict[str, float]


_DIS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
        "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}


def normalise(rgb: np.ndarray, cfg: AlignConfig) -> np.ndarray:
    """Grey level with local contrast equalised (CLAHE, 8×8 tiles), uint8."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return cv2.createCLAHE(clipLimit=cfg.clahe_clip, tileGridSize=(8, 8)).apply(grey)


def _features(grey: np.ndarray, kind: str) -> tuple[list, np.ndarray | None]:
    detector = cv2.SIFT_create(nfeatures=4000) if kind == "sift" else cv2.ORB_create(nfeatures=4000)
    return detector.detectAndCompute(grey, None)


def match_homography(night: np.ndarray, day: np.ndarray, cfg: AlignConfig) -> tuple[np.ndarray | None, dict, str]:
    """RANSAC homography night → day from ratio-tested feature matches; (H or None, counts, failure reason)."""
    kn, dn = _features(night, cfg.features)
    kd, dd = _features(day, cfg.features)
    counts = {"keypoints_night": len(kn), "keypoints_day": len(kd), "matches": 0, "inliers": 0, "inlier_ratio": 0.0}
    min_inliers = cfg.min_inliers or (8 if cfg.model == "homography" else 6)
    if dn is None or dd is None or len(kn) < 4 or len(kd) < 4:
        return None, counts, "too few features (textureless or black image)"
    norm = cv2.NORM_L2 if cfg.features == "sift" else cv2.NORM_HAMMING
    pairs = cv2.BFMatcher(norm).knnMatch(dn, dd, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < cfg.ratio * p[1].distance]
    counts["matches"] = len(good)
    if len(good) < min_inliers:
        return None, counts, f"{len(good)} feature matches (< min_inliers {min_inliers})"
    src = np.float32([kn[m.queryIdx].pt for m in good])
    dst = np.float32([kd[m.trainIdx].pt for m in good])
    if cfg.model == "homography":
        h, inliers = cv2.findHomography(src, dst, cv2.RANSAC, cfg.ransac_threshold, maxIters=2000, confidence=0.999)
    else:
        a, inliers = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, maxIters=2000, confidence=0.999,
                                                 ransacReprojThreshold=cfg.ransac_threshold)
        h = None if a is None else np.vstack([a, [0.0, 0.0, 1.0]])
    n_in = int(inliers.sum()) if inliers is not None else 0
    counts.update(inliers=n_in, inlier_ratio=n_in / len(good))
    if h is None or n_in < min_inliers:
        return None, counts, f"{n_in} RANSAC inliers (< min_inliers {min_inliers})"
    if counts["inlier_ratio"] < cfg.min_inlier_ratio:
        return None, counts, f"inlier ratio {counts['inlier_ratio']:.2f} (< {cfg.min_inlier_ratio})"
    det = float(np.linalg.det(h[:2, :2]))
    if not 0.25 < det < 4.0 or abs(h[2, :2]).max() > 0.01:
        return None, counts, f"degenerate homography (scale {det:.2f})"
    return h, counts, ""


def grid(shape: tuple[int, int]) -> np.ndarray:
    """H×W×2 float32 pixel coordinates (x, y)."""
    ys, xs = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    return np.stack([xs, ys], -1)


def homography_flow(h: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Displacement field of a homography on an H×W grid, the coarse flow of DANIA Eq. (18) (targets not masked)."""
    pts = grid(shape)
    mapped = cv2.perspectiveTransform(pts.reshape(-1, 1, 2), h).reshape(*shape, 2)
    return (mapped - pts).astype(np.float32)


def warp(image: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``image(p + flow(p))`` (bilinear) and the mask of pixels whose source lies inside ``image``."""
    pts = grid(flow.shape[:2]) + np.nan_to_num(flow, nan=-1e6)
    h, w = image.shape[:2]
    valid = (pts[..., 0] >= 0) & (pts[..., 0] <= w - 1) & (pts[..., 1] >= 0) & (pts[..., 1] <= h - 1)
    valid &= np.isfinite(flow).all(-1)
    out = cv2.remap(image, pts[..., 0], pts[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return out, valid


def photo_error(night: np.ndarray, day: np.ndarray, flow: np.ndarray) -> float:
    """Mean |night − warped day| over valid pixels, grey levels in [0, 1] (NaN if nothing overlaps)."""
    warped, valid = warp(day, flow)
    if not valid.any():
        return float("nan")
    return float(np.abs(night.astype(np.float32) - warped.astype(np.float32))[valid].mean() / 255.0)


def _refine(a: np.ndarray, b: np.ndarray, h: np.ndarray, cfg: AlignConfig) -> np.ndarray:
    """Flow a → b: the homography ``h`` (a → b coords) composed with DIS flow between a and b warped by ``h``."""
    shape = a.shape[:2]
    warped_b, _ = warp(b, homography_flow(h, shape))
    dis = cv2.DISOpticalFlow_create(_DIS[cfg.dis_preset])
    residual = dis.calc(a, warped_b, None)
    pts = grid(shape) + residual
    mapped = cv2.perspectiveTransform(pts.reshape(-1, 1, 2), h).reshape(*shape, 2)
    return mask_outside((mapped - grid(shape)).astype(np.float32), b.shape[:2])


def mask_outside(flow: np.ndarray, target: tuple[int, int]) -> np.ndarray:
    """``flow`` with NaN where ``p + flow(p)`` falls outside an image of size ``target`` (H, W)."""
    pts = grid(flow.shape[:2]) + flow
    inside = (pts[..., 0] >= 0) & (pts[..., 0] <= target[1] - 1) & (pts[..., 1] >= 0) & (pts[..., 1] <= target[0] - 1)
    return np.where(inside[..., None], flow, np.float32(np.nan)).astype(np.float32)


def consistent(flow: np.ndarray, back: np.ndarray, fallback: np.ndarray, limit: float) -> tuple[np.ndarray, float]:
    """``flow`` where ``back`` brings each pixel back within ``limit`` pixels, ``fallback`` elsewhere; kept fraction."""
    returned, valid = warp(np.nan_to_num(back, nan=1e4), flow)
    ok = valid & (np.linalg.norm(flow + returned, axis=-1) < limit)
    return np.where(ok[..., None], flow, fallback).astype(np.float32), float(ok.mean())


def align_pair(night_rgb: np.ndarray, day_rgb: np.ndarray, cfg: AlignConfig) -> Alignment:
    """Coarse homography, fine flow both ways and quality of one night/day pair (same image size)."""
    long_side = max(night_rgb.shape[:2])
    scale = min(1.0, cfg.max_side / long_side) if long_side >= cfg.min_side else cfg.min_side / long_side
    size = (round(night_rgb.shape[1] * scale), round(night_rgb.shape[0] * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    night = normalise(cv2.resize(night_rgb, size, interpolation=interp), cfg)
    day = normalise(cv2.resize(day_rgb, size, interpolation=interp), cfg)
    zero = np.zeros((*night.shape, 2), np.float32)
    h, counts, reason = match_homography(night, day, cfg)
    quality: dict[str, float] = {**counts, "photo_error_identity": photo_error(night, day, zero)}
    if h is None:
        return Alignment(False, reason, None, None, None, scale, quality)
    coarse = mask_outside(homography_flow(h, night.shape), night.shape)
    forward, backward = _refine(night, day, h, cfg), _refine(day, night, np.linalg.inv(h), cfg)
    limit = cfg.consistency * scale
    fine, kept = consistent(forward, backward, coarse, limit)
    coarse_back = mask_outside(homography_flow(np.linalg.inv(h), day.shape), day.shape)
    fine_back, _ = consistent(backward, forward, coarse_back, limit)
    quality.update(photo_error_coarse=photo_error(night, day, coarse), photo_error_fine=photo_error(night, day, fine),
                   valid_fraction=float(np.isfinite(fine).all(-1).mean()), fine_consistent=kept)
    ratio = quality["photo_error_coarse"] / max(quality["photo_error_identity"], 1e-6)
    if not ratio <= cfg.max_photo_ratio:
        reason = f"photometric error ×{ratio:.2f} after warping (> {cfg.max_photo_ratio}: the warp does not fit)"
        return Alignment(False, reason, h, None, None, scale, quality)
    return Alignment(True, "", h, fine, fine_back, scale, quality)


def flow_error(flow: np.ndarray, true_flow: np.ndarray) -> dict[str, float]:
    """End-point error against a known flow over pixels where both are defined: mean and fraction under 1 px."""
    both = np.isfinite(flow).all(-1) & np.isfinite(true_flow).all(-1)
    if not both.any():
        return {"epe": float("nan"), "under_1px": float("nan")}
    epe = np.linalg.norm(flow[both] - true_flow[both], axis=-1)
    return {"epe": float(epe.mean()), "under_1px": float((epe < 1.0).mean())}
