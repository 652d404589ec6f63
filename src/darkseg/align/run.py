"""Align every day/night pair of a dataset split into a cache folder, with a quality report and a preview grid."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from darkseg.align.cache import AlignmentCache
from darkseg.align.estimate import AlignConfig, align_pair, flow_error, homography_flow, mask_outside
from darkseg.align.preview import preview_row, write_grid
from darkseg.errors import DarksegError, DataError


def _true_flow(matrix: Sequence[Sequence[float]], scale: float, shape: tuple[int, int]) -> np.ndarray:
    """The known night→day flow at working resolution from a full-resolution 2×3 or 3×3 matrix."""
    m = np.eye(3)
    m[: len(matrix)] = np.asarray(matrix, np.float64)
    s = np.diag([scale, scale, 1.0])
    return mask_outside(homography_flow(s @ m @ np.linalg.inv(s), shape), shape)


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def align_dataset(
    dataset: Any,
    out: Path,
    cfg: AlignConfig,
    truth: dict[str, Any] | None = None,
    preview: int = 8,
    force: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Align the pairs of ``dataset`` (views ``image`` = night and ``day``); returns the summary.

    Pairs already in the cache folder (same config) are reused. A pair with an unreadable file or a failed alignment
    is recorded as ``failed`` with its reason (datasets exclude it); nothing is silently used.
    """
    from tqdm import tqdm

    cache = AlignmentCache(out)
    identity = cfg.model_dump()
    report: dict[str, Any] = {"config": identity, "pairs": {}}
    if cache.report_path.is_file() and not force:
        old = cache.report()
        if old.get("config") != identity:
            raise DataError(f"{cache.report_path}: made with other settings ({old.get('config')}); use another "
                            "--out folder or --force")
        report = old
    rows = []
    for index in tqdm(range(len(dataset)), desc="align", unit="pair", disable=not progress, mininterval=2):
        pair_id = dataset.ids[index]
        cached = report["pairs"].get(pair_id)
        if cached is not None and (cached["status"] != "ok" or cache.pair_path(pair_id).is_file()):
            continue
        try:
            sample = dataset.load(index)
        except DarksegError as err:
            report["pairs"][pair_id] = {"status": "failed", "reason": str(err)}
            continue
        result = align_pair(sample["image"], sample["day"], cfg)
        entry: dict[str, Any] = {"status": "ok" if result.ok else "failed", "reason": result.reason,
                                 "scale": result.scale, **result.quality}
        if truth is not None and pair_id in truth and result.fine is not None:
            true = _true_flow(truth[pair_id], result.scale, result.fine.shape[:2])
            coarse = mask_outside(homography_flow(result.homography, true.shape[:2]), true.shape[:2])
            factor = 1.0 / result.scale  # errors in full-resolution pixels
            for name, flow in (("coarse", coarse), ("fine", result.fine)):
                err = flow_error(flow, true)
                entry[f"epe_{name}"] = err["epe"] * factor
                entry[f"under_1px_{name}"] = err["under_1px"]
            entry["epe_identity"] = flow_error(np.zeros_like(true), true)["epe"] * factor
        if result.ok:
            cache.write_pair(pair_id, result.homography, result.fine, result.fine_back, result.scale)
        report["pairs"][pair_id] = entry
        if len(rows) < preview:
            rows.append(preview_row(sample["image"], sample["day"], result))
        if index % 50 == 49:
            cache.write_report(report)
    cache.write_report(report)
    if rows:
        write_grid(out / "preview.png", rows)
    return summarise(report, [dataset.ids[i] for i in range(len(dataset))])


def summarise(report: dict[str, Any], ids: list[str]) -> dict[str, Any]:
    """Counts, mean quality over aligned pairs and the failed pairs with their reasons."""
    pairs = [report["pairs"][i] for i in ids if i in report["pairs"]]
    ok = [p for p in pairs if p["status"] == "ok"]
    keys = ["inlier_ratio", "inliers", "photo_error_identity", "photo_error_coarse", "photo_error_fine",
            "fine_consistent", "epe_identity", "epe_coarse", "epe_fine", "under_1px_coarse", "under_1px_fine"]
    means = {k: _mean([p[k] for p in ok if k in p]) for k in keys if any(k in p for p in ok)}
    failed = {i: report["pairs"][i]["reason"] for i in ids if report["pairs"].get(i, {}).get("status") == "failed"}
    return {"pairs": len(ids), "aligned": len(ok), "failed": len(failed), "mean": means, "failed_pairs": failed}
