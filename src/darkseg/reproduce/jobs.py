"""``darkseg reproduce --jobs N``: the suite's runs trained in N processes at once, each on its share of the cores
(default ``auto``: one per seed up to the CPU count on a machine without CUDA).

Each process is the same ``darkseg reproduce`` command with ``--runs-only`` and a claims folder: the processes take
the runs (column, seed) in plan order, each run once, a run after the runs it needs (``runner.run_claimed``), so
every run lands where the one-process command puts it; the calling process then aggregates them as a normal rerun
does (every run reused). On a small CPU, N one-thread processes train the suite's many small runs faster than
one process whose convolutions are split over N threads.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from darkseg.engine.runner import available_cpus
from darkseg.errors import ConfigError, DarksegError

if TYPE_CHECKING:
    from darkseg.reproduce.runner import Plan


def resolve_jobs(value: str, num_seeds: int) -> int:
    """``--jobs``: a positive number of processes, or ``auto``: one process per seed up to the machine's CPU count
    where no CUDA device is visible (one-thread processes train the small scenes runs fastest: on 2 cores two of them
    gave 42 images/s of the scenes student against 35 for one two-thread process), and one process with CUDA or
    under torchrun (the ranks share the work)."""
    if value == "auto":
        import torch

        if int(os.environ.get("WORLD_SIZE", "1")) > 1 or torch.cuda.is_available():
            return 1
        return max(1, min(num_seeds, available_cpus()))
    try:
        jobs = int(value)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise ConfigError(f"--jobs {value}: give a positive number of processes, or auto")
    return jobs


def threads_per_job(jobs: int, overrides: list[str]) -> list[str]:
    """``train.threads`` for each process (CPUs ÷ processes, at least 1) unless the user set it."""
    if any(o.startswith("train.threads=") for o in overrides):
        return []
    return [f"train.threads={max(1, available_cpus() // jobs)}"]


def child_argv(args: argparse.Namespace, out: Path, seeds: tuple[int, ...], extra: list[str], claims: Path
               ) -> list[str]:
    """The ``darkseg reproduce`` command line of one process: the user's arguments, every seed, ``--runs-only`` and
    the claims folder through which the processes share out the runs."""
    argv = ["reproduce", args.paper, *args.overrides, *extra, "--suite", args.suite, "--out", str(out),
            "--seeds", ",".join(map(str, seeds)), "--jobs", "1", "--runs-only", "--claims", str(claims)]
    for flag, value in (("--configs", args.configs), ("--data-root", args.data_root),
                        ("--eval-data-root", args.eval_data_root), ("--split", args.split)):
        if value is not None:
            argv += [flag, str(value)]
    for name in dict.fromkeys(args.ablation):
        argv += ["--ablation", name]
    return [*argv, "--quick"] if args.quick else argv


def generate_data(plan: Plan, keys: tuple[str, ...]) -> None:
    """The generated datasets (built-in benchmarks) that the runs of ``keys`` read, made here once before the job
    processes start: otherwise they all find them missing, and one makes them while the others wait for it
    (``fileio.cache_lock``)."""
    from darkseg.data.registry import ensure_generated

    columns = plan.suite.columns()
    seen: set[str] = set()
    for key in keys:
        cfg = plan.config(columns[key], plan.seeds[0])
        for data in (cfg.data, cfg.eval.data):
            if data is not None and (ident := data.model_dump_json()) not in seen:
                seen.add(ident)
                ensure_generated(data)


def _stop(procs: list[tuple[Path, subprocess.Popen]]) -> None:
    """Interrupt the processes still running (each stops at its next iteration and keeps its checkpoints)."""
    for _, p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    for _, p in procs:
        p.wait()


def run_jobs(args: argparse.Namespace, out: Path, seeds: tuple[int, ...], jobs: int) -> None:
    """Train every run of the suite (output folder ``out``) in ``jobs`` processes that share out the runs
    (``runner.run_claimed``); when one fails or is interrupted, stop the others and raise."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("--jobs: not under torchrun (the ranks already share the work); drop --jobs")
    logs = out / "jobs"
    claims = logs / "claims"
    shutil.rmtree(claims, ignore_errors=True)  # no process is running: claims of an earlier, stopped call are stale
    claims.mkdir(parents=True)
    extra = threads_per_job(jobs, args.overrides)
    procs: list[tuple[Path, subprocess.Popen]] = []
    for i in range(1, jobs + 1):
        log = logs / f"process-{i}.log"
        cmd = [sys.executable, "-m", "darkseg", *child_argv(args, out, seeds, extra, claims)]
        with log.open("w") as f:
            procs.append((log, subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)))
    print(f"training seeds {','.join(map(str, seeds))} in {jobs} processes that share out the runs"
          f"{' (' + extra[0] + ' each)' if extra else ''}; logs: {logs}", flush=True)
    try:
        while any(p.poll() is None for _, p in procs):
            if any(p.poll() not in (None, 0) for _, p in procs):
                break  # the others may wait for a run the failed process had claimed
            time.sleep(2)
    except KeyboardInterrupt:
        _stop(procs)
        raise
    failed = [(log, p.returncode) for log, p in procs if p.poll() not in (None, 0)]  # before the others are stopped
    _stop(procs)
    if failed:
        log, rc = failed[0]
        raise DarksegError(f"--jobs: a process failed (exit {rc}); its output is in {log}; rerun the same command to "
                           "continue (finished runs are reused)")
