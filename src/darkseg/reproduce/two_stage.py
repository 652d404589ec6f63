"""Two-stage WSSS in a reproduce table: a weakly supervised column writes pseudo masks of its train split, a fully
supervised segmenter column trains on them (``data.train_mask_dir``) and is evaluated like every column."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from darkseg.fileio import atomic_write_bytes
from darkseg.reproduce.tables import Column, Need

if TYPE_CHECKING:
    from darkseg.config import ExperimentConfig

PSEUDO_DIR = "pseudo_masks"
PSEUDO_SCORE = "pseudo_masks.json"


def export_pseudo_masks(cfg: ExperimentConfig, run_dir: Path, crf: bool = False) -> None:
    """Pseudo masks of the run's deployed model on its train split (the view it reads, image-label class filter,
    optional dense CRF) into ``run_dir/pseudo_masks``, and their mIoU against the train ground truth into
    ``run_dir/pseudo_masks.json``. Resumes a killed export: masks already written are kept."""
    from darkseg.engine.pseudo import write_pseudo_masks

    split = cfg.data.train_split
    written, kept, metrics = write_pseudo_masks(cfg, None, split, run_dir / PSEUDO_DIR, "gt", crf)
    score = {"split": split, "images": written + kept, "crf": crf,
             "miou": None if metrics is None else metrics.miou, "pixacc": None if metrics is None else metrics.pixacc}
    atomic_write_bytes(run_dir / PSEUDO_SCORE, json.dumps(score, indent=2).encode())
    quality = "" if metrics is None else f", mIoU {metrics.miou:.2f} against the {split} ground truth"
    print(f"    pseudo masks of {written + kept} {split} images in {run_dir / PSEUDO_DIR} "
          f"({written} written, {kept} kept{quality})", flush=True)


def pseudo_mask_export(crf: bool = False) -> Callable[[ExperimentConfig, Path], None]:
    """``Column.export`` of a column whose pseudo masks a ``retrain`` column reads (create it once per column: a
    suite compares the columns of its tables, and two separately made exports are different columns)."""
    return functools.partial(export_pseudo_masks, crf=crf)


def retrain(key: str, label: str, config: str, source: str, quick: tuple[str, ...] = ()) -> Column:
    """A segmenter column trained on the pseudo masks of column ``source`` (same seed); ``source`` must be declared
    with ``export=pseudo_mask_export(...)``; ``quick``: its ``--quick`` overrides."""
    return Column(key, label, config, needs=(Need(source, "data.train_mask_dir", PSEUDO_DIR, absolute=True),),
                  quick=quick)
