"""How a method declares what ``darkseg reproduce`` runs: columns, tables, suites (the runner serves them all).

A ``Column`` is one trained model: a config, and the runs it needs first (``Need``: a file of another column's run
of the same seed, passed as a config override). ``Column.export`` (optional) writes extra outputs into the column's
finished run folder once, when a column of the run plan needs it (e.g. pseudo masks a supervised column trains on,
``reproduce/two_stage.py``). A ``Table`` groups columns with the column the paired differences are taken against
(``baseline``) and the one the gap is measured to (``reference``). A ``Suite`` is a dataset's main table, its
ablation tables, seeds and quick-mode overrides; a ``Paper`` names the suites of one method. Declarations are plain
data: no training code is imported here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from darkseg.config import ExperimentConfig
    from darkseg.reproduce.runner import Plan


@dataclass(frozen=True)
class Need:
    """A file of another column's run (same seed) that this column reads: ``override=<that run>/<path>``;
    ``absolute`` for a key read relative to something other than the working directory (``data.train_mask_dir`` is
    read under ``data.root``), so a relative ``--out`` still names the run."""

    column: str
    override: str
    path: str = "model_final.safetensors"
    absolute: bool = False


@dataclass(frozen=True)
class Column:
    """One trained model of a table: a config relative to the configs folder, and what it needs first.

    ``export(cfg, run_dir)``, if set, runs once after training, when a column of the run plan needs this one, and
    writes further files into ``run_dir`` (the runner marks it done with an ``export.done`` file), for a ``Need`` of
    that column to read.

    ``score(cfg, run_dir, split)``, if set, replaces the default score (the deployed model's mIoU on ``split``, or
    the config's ``eval.split`` when ``split`` is None): it returns a metrics dict with at least ``split``,
    ``miou``, ``pixacc`` and ``per_class_iou`` (e.g. PLDA's CAM mIoU on the train split at the best background
    threshold). Every column of one table must be scored the same way.

    ``quick`` holds the column's own config overrides in ``--quick`` (after the suite's), e.g. a shorter schedule
    where the teacher and the students of one table train for different lengths.

    ``cost`` is the run's training time relative to the suite's other columns (measured, roughly; default 1). It
    changes nothing in a run, only the order in which ``--jobs`` processes take the runs (``schedule_order``).
    """

    key: str
    label: str
    config: str
    needs: tuple[Need, ...] = ()
    export: Callable[[ExperimentConfig, Path], None] | None = None
    score: Callable[[ExperimentConfig, Path, str | None], dict] | None = None
    quick: tuple[str, ...] = ()
    cost: float = 1.0

    def __post_init__(self) -> None:
        if not self.cost > 0:
            raise ValueError(f"column {self.key!r}: cost must be positive, got {self.cost}")


@dataclass(frozen=True)
class Figures:
    """Which columns the report's qualitative grid and class-map figure show (empty: no such figure)."""

    grid: tuple[str, ...] = ()
    cams: tuple[str, ...] = ()
    # a method's own figures: extra(plan, table, labels, out folder) -> the written file
    extra: tuple[Callable[[Plan, Table, dict[str, str], Path], Path], ...] = ()


@dataclass(frozen=True)
class Table:
    """Columns reported together; every column but ``baseline`` and ``reference`` gets a paired difference to
    ``baseline``, and the gap recovered is (column − baseline) / (reference − baseline). ``pairs`` (column, its own
    baseline) overrides that baseline for those columns, e.g. a plug-in on several hosts: each + plug-in column
    against its host alone; with ``baseline`` None only the columns of ``pairs`` are compared."""

    title: str
    columns: tuple[Column, ...]
    baseline: str | None = None
    reference: str | None = None
    gap_column: str | None = None  # the column whose gap recovered is the table's headline figure
    gap_note: str = ""  # the paper's own figure for it, e.g. "paper, VOC: 0.84"
    figures: Figures = Figures()
    check: Callable[[Plan, Table], None] | None = None  # fails before any training if inputs are missing
    pairs: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        keys = [c.key for c in self.columns]
        if len(set(keys)) != len(keys):
            raise ValueError(f"table {self.title!r}: duplicate column keys {keys}")
        paired = [k for pair in self.pairs for k in pair]
        for role in (self.baseline, self.reference, self.gap_column, *self.figures.grid, *self.figures.cams, *paired):
            if role is not None and role not in keys:
                raise ValueError(f"table {self.title!r}: {role!r} is not one of its columns {keys}")
        if len({c.score for c in self.columns}) > 1:
            raise ValueError(f"table {self.title!r}: its columns are scored in different ways; compare like with like")
        if any(column == base for column, base in self.pairs) or len(dict(self.pairs)) != len(self.pairs):
            raise ValueError(f"table {self.title!r}: pairs {self.pairs} must give each column one other baseline")

    def baseline_of(self, key: str) -> str | None:
        """The column ``key`` is compared with (its ``pairs`` entry, else ``baseline``), None if it is not compared."""
        own = dict(self.pairs).get(key)
        if own is not None or self.baseline is None or key in (self.baseline, self.reference):
            return own
        return self.baseline

    def compared(self) -> tuple[str, ...]:
        """Keys of the columns that get a paired difference to their baseline."""
        return tuple(c.key for c in self.columns if self.baseline_of(c.key) is not None)


@dataclass(frozen=True)
class Suite:
    """A dataset's main table, ablation tables (by CLI name), default seeds and quick-mode settings."""

    name: str
    main: Table
    ablations: dict[str, Table] = field(default_factory=dict)
    default_seeds: tuple[int, ...] = (0,)
    quick_seeds: tuple[int, ...] = (0,)
    quick: tuple[str, ...] = ()  # config overrides of every run in --quick
    needs_data_root: bool = False
    # prepare(plan, keys of the columns to run): once before any column, on the main process (e.g. the alignment
    # flows a day→night suite reads); must reuse what an earlier call made, so rerunning a suite is cheap
    prepare: Callable[[Plan, tuple[str, ...]], None] | None = None

    def columns(self) -> dict[str, Column]:
        """Every column of every table by key; one key names one run (a column shared by tables trains once)."""
        out: dict[str, Column] = {}
        for table in (self.main, *self.ablations.values()):
            for col in table.columns:
                if out.setdefault(col.key, col) != col:
                    raise ValueError(f"suite {self.name!r}: two different columns are named {col.key!r}")
        return out


@dataclass(frozen=True)
class Paper:
    """One method's reproduction: ``darkseg reproduce <name> --suite <suite>``."""

    name: str
    title: str
    suites: dict[str, Suite]


def order_runs(columns: dict[str, Column], wanted: tuple[str, ...]) -> tuple[Column, ...]:
    """``wanted`` columns and everything they need, each after the columns it needs (declaration order otherwise)."""
    done: list[str] = []

    def visit(key: str, path: tuple[str, ...]) -> None:
        if key in done:
            return
        if key in path:
            raise ValueError(f"reproduce columns need each other in a cycle: {' -> '.join(path + (key,))}")
        if key not in columns:
            raise ValueError(f"column {path[-1]!r} needs {key!r}, which no table of the suite declares")
        for need in columns[key].needs:
            visit(need.column, path + (key,))
        done.append(key)

    for key in wanted:
        visit(key, ())
    return tuple(columns[k] for k in done)


def schedule_order(columns: dict[str, Column], wanted: tuple[str, ...]) -> tuple[Column, ...]:
    """The runs of one seed in the order ``--jobs`` processes take them: by decreasing upward rank (a column's
    ``cost`` plus the largest rank among the columns that need it), so the runs others wait for start first, then
    the long ones, and the cheap independent ones fill the end (list scheduling; it never puts a column before one
    it needs, as every cost is positive). Ties keep the declaration order of ``order_runs``."""
    ordered = order_runs(columns, wanted)
    rank: dict[str, float] = {}
    for col in reversed(ordered):  # a column's dependents come after it in ``ordered``: their ranks are known
        after = [rank[c.key] for c in ordered if c.key in rank and any(n.column == col.key for n in c.needs)]
        rank[col.key] = col.cost + max(after, default=0.0)
    return tuple(sorted(ordered, key=lambda c: -rank[c.key]))
