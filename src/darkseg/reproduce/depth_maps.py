"""Depth maps the Table 2(c) rows need: produced beforehand by ``darkseg depth`` from local model weights."""

from __future__ import annotations

from pathlib import Path

from darkseg.errors import DarksegError
from darkseg.reproduce.runner import Plan
from darkseg.reproduce.suites import DEPTH_ROWS, Run


def ensure_depth_maps(plan: Plan, rows: tuple[Run, ...]) -> None:
    """Fail before any training if a row's depth folder is missing, saying which command writes it."""
    for run in rows:
        cfg = plan.config(run, plan.seeds[0])
        folder = Path(cfg.data.root) / (cfg.data.depth_dir or "depth")
        if not folder.is_dir() or not any(folder.iterdir()):
            model = DEPTH_ROWS[run.key]
            raise DarksegError(
                f"{folder}: depth maps for the '{run.label}' row are missing; write them with "
                f"`darkseg depth {cfg.data.root} {folder} --model {model} --weights DIR` "
                "(DIR: the model's Hugging Face folder, see `darkseg depth --help`)"
            )
