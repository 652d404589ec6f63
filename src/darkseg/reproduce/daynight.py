"""What the day→night suites share: the source-only column every adapted model is compared with (and, for methods
that start from it, initialised from), and the alignment of the target's day/night pairs before any column trains."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from darkseg.reproduce.tables import Column, Need

if TYPE_CHECKING:
    from darkseg.reproduce.runner import Plan

SOURCE_ONLY_INIT = Need("source_only", "method.init")  # the adapted segmenter starts from this seed's source-only one


def source_only(config: str = "daynight/scenes_source_only_deeplabv2.yaml") -> Column:
    """The segmenter trained on the labelled day source only, evaluated on the night test split."""
    return Column("source_only", "source-only", config)


def align_target_pairs(plan: Plan, keys: tuple[str, ...], settings: dict | None = None) -> None:
    """``darkseg align`` on the target train split of every column of ``keys`` whose method aligns its pairs (``method.align``
    other than ``none``, with day images): cached pairs are reused, so a rerun costs a read of the cache. Failed pairs
    are reported and excluded from training by the dataset. ``settings``: ``darkseg align`` options (AlignConfig)."""
    from darkseg.align.estimate import AlignConfig
    from darkseg.align.run import align_dataset
    from darkseg.data.registry import build_dataset

    done: set[Path] = set()
    columns = plan.suite.columns()
    for column in (columns[k] for k in keys):
        cfg = plan.config(column, plan.seeds[0])
        target = cfg.data.target
        method = cfg.method
        if target is None or getattr(method, "align", "none") == "none" or not getattr(method, "day_domain", True):
            continue
        split = target.train_split
        out = Path(target.align_dir) if target.align_dir else Path(target.root) / "align" / split
        if out in done:
            continue
        done.add(out)
        dataset = build_dataset(target, split, ("image", "day"))
        summary = align_dataset(dataset, out, AlignConfig(**(settings or {})), progress=False)
        print(f"alignment of {target.dataset} {split}: {summary['aligned']} of {summary['pairs']} pairs aligned, "
              f"{summary['failed']} failed and excluded from the static loss (cache {out})", flush=True)
