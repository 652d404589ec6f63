"""Depth maps the Table 2(c) rows need: produced beforehand by ``darkseg depth`` from local model weights."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from darkseg.errors import DarksegError

if TYPE_CHECKING:
    from darkseg.reproduce.runner import Plan
    from darkseg.reproduce.tables import Table


def ensure_depth_maps(plan: Plan, table: Table, models: dict[str, str]) -> None:
    """Fail before any training if a row's depth folder is missing, saying which command writes it.

    ``models`` maps a column key to the ``darkseg depth --model`` name that writes its maps.
    """
    for column in table.columns:
        if column.key not in models:
            continue
        cfg = plan.config(column, plan.seeds[0])
        folder = Path(cfg.data.root) / (cfg.data.depth_dir or "depth")
        if not folder.is_dir() or not any(folder.iterdir()):
            raise DarksegError(
                f"{folder}: depth maps for the '{column.label}' row are missing; write them with "
                f"`darkseg depth {cfg.data.root} {folder} --model {models[column.key]} --weights DIR` "
                "(DIR: the model's Hugging Face folder, see `darkseg depth --help`)"
            )
