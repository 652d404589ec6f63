"""Run logging: TensorBoard scalars and CSV files (rank 0 only)."""

from __future__ import annotations

import csv
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter


class CSVLog:
    """A wide CSV (one row per call); the header grows if new columns appear."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.columns: list[str] = []
        if path.is_file():
            with path.open() as f:
                self.columns = next(csv.reader(f), [])

    def write(self, row: dict[str, float | int | str]) -> None:
        new = [k for k in row if k not in self.columns]
        if new:
            old_rows = []
            if self.path.is_file():
                with self.path.open() as f:
                    old_rows = list(csv.DictReader(f))
            self.columns += new
            with self.path.open("w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=self.columns)
                w.writeheader()
                w.writerows(old_rows)
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.columns).writerow(row)

    def rows(self) -> list[dict[str, str]]:
        if not self.path.is_file():
            return []
        with self.path.open() as f:
            return list(csv.DictReader(f))

    def truncate_after(self, iteration: int) -> None:
        """Drop rows logged after ``iteration`` (a resumed run re-logs them)."""
        if not self.path.is_file():
            return
        with self.path.open() as f:
            rows = [r for r in csv.DictReader(f) if int(float(r.get("iteration", 0) or 0)) <= iteration]
        with self.path.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.columns)
            w.writeheader()
            w.writerows(rows)


class RunLogger:
    """Writes training and validation scalars to TensorBoard and to ``train_log.csv`` / ``val_log.csv``."""

    def __init__(self, run_dir: Path, enabled: bool, resume_from: int = 0) -> None:
        self.enabled = enabled
        if not enabled:
            return
        self.train_csv = CSVLog(run_dir / "train_log.csv")
        self.val_csv = CSVLog(run_dir / "val_log.csv")
        # Rows after the iteration the run continues from belong to lost work: a resumed run logs them again.
        self.train_csv.truncate_after(resume_from)
        self.val_csv.truncate_after(resume_from)
        self.tb = SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=resume_from or None)

    def log_train(self, iteration: int, scalars: dict[str, float]) -> None:
        if not self.enabled:
            return
        for k, v in scalars.items():
            self.tb.add_scalar(f"train/{k}", v, iteration)
        self.train_csv.write({"iteration": iteration, **scalars})

    def log_val(self, iteration: int, scalars: dict[str, float]) -> None:
        if not self.enabled:
            return
        for k, v in scalars.items():
            self.tb.add_scalar(f"val/{k}", v, iteration)
        self.val_csv.write({"iteration": iteration, **scalars})

    def has_val(self, iteration: int) -> bool:
        """Whether ``val_log.csv`` already holds a validation of ``iteration`` (rank 0; False elsewhere)."""
        return self.enabled and any(int(float(r["iteration"])) == iteration for r in self.val_csv.rows())

    def best_val(self) -> dict[str, float | int] | None:
        """The best validation logged so far (highest mIoU, earliest on ties), as the trainer's ``best``."""
        best = None
        for r in self.val_csv.rows() if self.enabled else []:
            if best is None or float(r["miou"]) > best["miou"]:
                best = {"iteration": int(float(r["iteration"])), "miou": float(r["miou"]), "pixacc": float(r["pixacc"])}
        return best

    def close(self) -> None:
        if self.enabled:
            self.tb.close()
