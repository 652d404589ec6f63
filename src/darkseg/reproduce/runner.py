"""Runs the columns of a reproduce suite: each (column, seed) once, needed runs first, finished runs reused."""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from darkseg.config import ExperimentConfig, load_config
from darkseg.engine.distributed import barrier, is_main_process
from darkseg.engine.profile import profile
from darkseg.engine.runner import config_diff, evaluate_config, evaluation_only, read_run_config, train
from darkseg.errors import ConfigError
from darkseg.fileio import atomic_write_bytes
from darkseg.reproduce.tables import Column, Suite, order_runs, schedule_order

log = logging.getLogger(__name__)

METRICS_FILE = "eval_metrics.json"
EXPORT_DONE = "export.done"


@dataclass
class RunResult:
    """One trained and evaluated (run, seed)."""

    key: str
    seed: int
    run_dir: Path
    metrics: dict
    params: int
    gmac: float
    input_view: str


@dataclass
class Plan:
    """Everything a suite needs: where the configs and outputs are, seeds, overrides."""

    suite: Suite
    configs: Path
    out: Path
    seeds: tuple[int, ...]
    quick: bool
    overrides: list[str] = field(default_factory=list)
    split: str | None = None

    def run_dir(self, column: Column, seed: int) -> Path:
        return self.out / "runs" / column.key / f"seed{seed}"

    def config(self, column: Column, seed: int) -> ExperimentConfig:
        """The column's config for one seed: its needs point at the needed columns' runs of the same seed."""
        path = self.configs / column.config
        if not path.is_file():
            raise ConfigError(f"{path}: config of reproduce run {column.key!r} not found; pass --configs DIR")
        columns = self.suite.columns()
        overrides = [f"seed={seed}", f"output_dir={self.run_dir(column, seed)}"]
        for need in column.needs:
            needed = self.run_dir(columns[need.column], seed) / need.path
            overrides.append(f"{need.override}={needed.absolute() if need.absolute else needed}")
        if self.quick:
            overrides += [*self.suite.quick, *column.quick]
        return load_config(path, overrides + self.overrides)


class Progress:
    """Console progress of the whole suite: which run, how many left, and an ETA from the runs trained so far."""

    def __init__(self, total: int, eta: bool = True) -> None:
        self.total, self.done, self.trained, self.spent = total, 0, 0, 0.0
        self.t0 = time.perf_counter()
        self.eta = eta  # False where other processes share the remaining runs

    def start(self, what: str) -> None:
        eta = (f", ETA ≤ {_fmt(self.spent / self.trained * (self.total - self.done))}"
               if self.trained and self.eta else "")
        print(f"[{self.done + 1}/{self.total}] {what} (elapsed {_fmt(time.perf_counter() - self.t0)}{eta})",
              flush=True)

    def finish(self, seconds: float, trained: bool) -> None:
        self.done += 1
        if trained:
            self.trained += 1
            self.spent += seconds


def _fmt(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def _score_name(score: object) -> str:
    """A stable name of a column's scoring function (cached metrics made by another one are recomputed)."""
    if score is None:
        return "eval"
    if isinstance(score, functools.partial):
        args = [repr(a) for a in score.args] + [f"{k}={v!r}" for k, v in sorted(score.keywords.items())]
        return f"{_score_name(score.func)}({', '.join(args)})"
    return f"{getattr(score, '__module__', '')}.{getattr(score, '__qualname__', type(score).__name__)}"


def eval_settings(cfg: ExperimentConfig) -> dict:
    """The evaluation settings a run's cached metrics depend on (its split is checked apart; batch size is not one)."""
    settings = cfg.eval.model_dump(mode="json", exclude={"split": True, "inference": {"batch_size"}})
    return json.loads(json.dumps(settings))  # the form the cache file gives back


def run_one(plan: Plan, run: Column, seed: int, progress: Progress, export: bool = True) -> RunResult:
    """Train (or reuse) one run, export what later columns need (``export``), and evaluate it on its column's split."""
    cfg = plan.config(run, seed)
    run_dir = plan.run_dir(run, seed)
    split = plan.split or cfg.eval.split
    metrics_path = run_dir / METRICS_FILE
    progress.start(f"{run.key} seed {seed}: {run.config}")
    t0 = time.perf_counter()
    trained = False
    saved = run_dir / "config.yaml"
    made_with = read_run_config(saved) if saved.is_file() else cfg
    changed = config_diff(made_with, cfg)
    # Keys that do not change the weights (threads, DDP flags, logging, ...) may differ; so may the evaluation
    # settings, unless the run's export (made with them) exists: the run is reused and only its evaluation is redone.
    exported = run.export is not None and (run_dir / EXPORT_DONE).is_file()
    refused = [c for c in changed if not evaluation_only(c[0]) or exported]
    if refused:
        key, old, new = refused[0]
        raise ConfigError(f"{saved}: this run was made with {key}={old}, {run.config} now gives {new}; delete its "
                          "folder to retrain it, or write the suite to another --out")
    if not (run_dir / "model_final.safetensors").is_file():  # resumed with the evaluation settings it started with
        result = train(cfg.model_copy(update={"eval": made_with.eval}), resume=True)
        if not result.completed:
            raise KeyboardInterrupt
        trained = True
    if export and run.export is not None and not (run_dir / EXPORT_DONE).is_file():
        if is_main_process():
            run.export(cfg, run_dir)
            atomic_write_bytes(run_dir / EXPORT_DONE, b"")
        barrier()
    scored_by = _score_name(run.score)
    cached = json.loads(metrics_path.read_text()) if metrics_path.is_file() else None
    # a cache without "eval" (an older version's) was made with the settings of the run's own config.yaml
    if cached is None or cached.get("scored_by", "eval") != scored_by or (
            run.score is None and cached.get("split") != split) or (
            cached.get("eval", eval_settings(made_with)) != eval_settings(cfg)):
        if run.score is None:
            metrics = {"split": split, **evaluate_config(cfg, None, split, progress=False).to_dict()}
        else:
            metrics = run.score(cfg, run_dir, plan.split)
        report = profile(cfg, cfg.data.augment.crop_size)
        cached = {**metrics, "scored_by": scored_by, "eval": eval_settings(cfg), "params": report.deploy_params,
                  "gmac": report.deploy_gmac,
                  "gmac_size": cfg.data.augment.crop_size, "input_view": cfg.method.input}
        if is_main_process():
            atomic_write_bytes(metrics_path, json.dumps(cached, indent=2).encode())  # a reused cache
        barrier()
    progress.finish(time.perf_counter() - t0, trained)
    print(f"    {run.key} seed {seed}: mIoU {cached['miou']:.2f}, PixAcc {cached['pixacc']:.2f} "
          f"({cached['input_view']} {cached['split']})", flush=True)
    return RunResult(run.key, seed, run_dir, cached, cached["params"], cached["gmac"], cached["input_view"])


def run_plan(plan: Plan, wanted: tuple[str, ...]) -> dict[str, list[RunResult]]:
    """Every wanted column (and what it needs) × seed; per seed, each column after the columns it needs. A column's
    export runs only when a column of this plan needs it."""
    ordered = order_runs(plan.suite.columns(), wanted)
    needed = {need.column for run in ordered for need in run.needs}
    progress = Progress(len(ordered) * len(plan.seeds))
    results: dict[str, list[RunResult]] = {r.key: [] for r in ordered}
    for seed in plan.seeds:
        for run in ordered:
            results[run.key].append(run_one(plan, run, seed, progress, export=run.key in needed))
    return results


def claim(path: Path) -> bool:
    """Create ``path`` if no process has (atomically, ``O_EXCL``): True for the one process that created it."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def run_claimed(plan: Plan, wanted: tuple[str, ...], claims: Path, poll: float = 2.0) -> None:
    """This process's share of the runs of ``wanted`` × seeds when several processes work through one plan
    (``reproduce --jobs``). Seed by seed, in ``schedule_order`` (needed and long runs first), it takes the first run
    no process has claimed whose needed runs of the same seed are finished, and claims it by creating
    ``claims/<key>-seed<s>``; when every unclaimed run waits for a run another process is training, it waits.
    ``<claim>.done`` marks a finished run (trained, exported when a column of the plan needs it, evaluated). So the
    processes share out runs, not seeds: five seeds on two processes keep both busy to the end."""
    ordered = schedule_order(plan.suite.columns(), wanted)
    needed = {need.column for run in ordered for need in run.needs}
    pending = [(run, seed) for seed in plan.seeds for run in ordered]
    progress = Progress(len(pending), eta=False)
    while pending:
        ready = next((i for i, (run, seed) in enumerate(pending)
                      if (claims / f"{run.key}-seed{seed}").exists()
                      or all((claims / f"{n.column}-seed{seed}.done").is_file() for n in run.needs)), None)
        if ready is None:
            time.sleep(poll)
            continue
        run, seed = pending.pop(ready)
        name = claims / f"{run.key}-seed{seed}"
        if not claim(name):  # another process trains it
            progress.finish(0.0, False)
            continue
        run_one(plan, run, seed, progress, export=run.key in needed)
        atomic_write_bytes(name.with_name(name.name + ".done"), b"")
