"""The on-disk alignment cache written by ``darkseg align`` and read by the datasets' ``flow`` view.

Layout of a cache folder (one per dataset split)::

    DIR/report.json          {"config": AlignConfig, "pairs": {id: {"status": "ok"|"failed", "reason", quality...}}}
    DIR/pairs/<id>.npz       homography (3×3, working coords), fine and fine_back (h×w×2 float16, working
                             resolution; NaN = no correspondence), scale (working size / image size)

Each pair file is written atomically, then the report (also atomically), so an interrupted run resumes.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from darkseg.errors import DataError
from darkseg.fileio import atomic_write_bytes

log = logging.getLogger(__name__)
REPORT = "report.json"


def _safe(pair_id: str) -> str:
    return pair_id.replace("/", "__")


class AlignmentCache:
    """Reads and writes one cache folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._report: dict[str, Any] | None = None

    @property
    def report_path(self) -> Path:
        return self.folder / REPORT

    def report(self) -> dict[str, Any]:
        if self._report is None:
            if not self.report_path.is_file():
                raise DataError(f"{self.report_path}: no alignment report; run 'darkseg align' for this split "
                                "(or set data.align_dir to its output folder)")
            try:
                self._report = json.loads(self.report_path.read_text())
            except ValueError as err:
                raise DataError(f"{self.report_path}: unreadable alignment report ({err}); rerun darkseg align") \
                    from None
        return self._report

    def pair_path(self, pair_id: str) -> Path:
        return self.folder / "pairs" / f"{_safe(pair_id)}.npz"

    def failed_ids(self, entries: Sequence[Any]) -> set[str]:
        """Ids of the entries whose alignment failed."""
        pairs = self.report().get("pairs", {})
        return {e.id for e in entries if e.id in pairs and pairs[e.id]["status"] != "ok"}

    def usable(self, entries: Sequence[Any], name: str, keep_failed: bool = False) -> list[Any]:
        """The entries whose alignment succeeded; failed ones are excluded with one logged line (``keep_failed``:
        kept, and logged as pairs without correspondence)."""
        pairs = self.report().get("pairs", {})
        missing = [e.id for e in entries if e.id not in pairs]
        if missing:
            raise DataError(f"{self.report_path}: no alignment for {len(missing)} pairs of {name} (e.g. "
                            f"{missing[0]!r}); rerun 'darkseg align' on this split")
        if keep_failed:
            failed = self.failed_ids(entries)
            if failed:
                log.warning("%s: %d of %d pairs have no alignment (failed; see %s): they are used without their day "
                            "image", name, len(failed), len(entries), self.report_path)
            return list(entries)
        kept = [e for e in entries if pairs[e.id]["status"] == "ok"]
        if not kept:
            raise DataError(f"{self.report_path}: every pair of {name} failed to align; see the report")
        if len(kept) < len(entries):
            failed = [e.id for e in entries if pairs[e.id]["status"] != "ok"]
            log.warning("%s: %d of %d pairs excluded because their alignment failed (e.g. %s); see %s", name,
                        len(failed), len(entries), failed[0], self.report_path)
        return kept

    def write_pair(self, pair_id: str, homography: np.ndarray, fine: np.ndarray, fine_back: np.ndarray,
                   scale: float) -> None:
        buf = io.BytesIO()
        np.savez_compressed(buf, homography=homography, fine=fine.astype(np.float16),
                            fine_back=fine_back.astype(np.float16), scale=np.float64(scale))
        atomic_write_bytes(self.pair_path(pair_id), buf.getvalue())

    def write_report(self, report: dict[str, Any]) -> None:
        self._report = report
        atomic_write_bytes(self.report_path, (json.dumps(report, indent=1, sort_keys=True) + "\n").encode())

    def load_pair(self, pair_id: str) -> dict[str, np.ndarray]:
        path = self.pair_path(pair_id)
        try:
            with np.load(path) as data:
                return {k: data[k] for k in data.files}
        except (OSError, ValueError, EOFError) as err:
            raise DataError(f"{path}: missing or unreadable alignment ({err}); rerun 'darkseg align'") from None

    def flow(self, pair_id: str, kind: str, shape: tuple[int, int]) -> np.ndarray:
        """The flow ``kind`` (fine, coarse or fine_back) of a pair at image size ``shape``, float32 H×W×2."""
        data = self.load_pair(pair_id)
        if kind == "coarse":
            from darkseg.align.estimate import homography_flow, mask_outside

            h, w = data["fine"].shape[:2]
            small = mask_outside(homography_flow(data["homography"], (h, w)), (h, w))
        else:
            small = data[kind].astype(np.float32)
        h, w = small.shape[:2]
        if (h, w) == tuple(shape):
            return small
        factor = np.array([shape[1] / w, shape[0] / h], np.float32)
        return cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR) * factor
