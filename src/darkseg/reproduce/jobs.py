"""``darkseg reproduce --jobs N``: the suite's seeds trained in N processes at once, each on its share of the cores
(default ``auto``: one per seed up to the CPU count on a machine without CUDA).

Each process is the same ``darkseg reproduce`` command on a subset of the seeds (round robin) with ``--runs-only``,
so every run lands where the one-process command puts it; the calling process then aggregates them as a normal
rerun does (every run reused). On a small CPU, N one-thread processes train the suite's many small runs faster than
one process whose convolutions are split over N threads.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from darkseg.engine.runner import available_cpus
from darkseg.errors import ConfigError, DarksegError


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


def seed_shares(seeds: tuple[int, ...], jobs: int) -> list[tuple[int, ...]]:
    """Seeds dealt round robin to at most ``jobs`` processes (no empty share)."""
    return [share for share in (seeds[i::jobs] for i in range(jobs)) if share]


def threads_per_job(jobs: int, overrides: list[str]) -> list[str]:
    """``train.threads`` for each process (CPUs ÷ processes, at least 1) unless the user set it."""
    if any(o.startswith("train.threads=") for o in overrides):
        return []
    return [f"train.threads={max(1, available_cpus() // jobs)}"]


def child_argv(args: argparse.Namespace, out: Path, seeds: tuple[int, ...], extra: list[str]) -> list[str]:
    """The ``darkseg reproduce`` command line of one share: the user's arguments for these seeds, ``--runs-only``."""
    argv = ["reproduce", args.paper, *args.overrides, *extra, "--suite", args.suite, "--out", str(out),
            "--seeds", ",".join(map(str, seeds)), "--jobs", "1", "--runs-only"]
    for flag, value in (("--configs", args.configs), ("--data-root", args.data_root),
                        ("--eval-data-root", args.eval_data_root), ("--split", args.split)):
        if value is not None:
            argv += [flag, str(value)]
    for name in dict.fromkeys(args.ablation):
        argv += ["--ablation", name]
    return [*argv, "--quick"] if args.quick else argv


def run_jobs(args: argparse.Namespace, out: Path, seeds: tuple[int, ...], jobs: int) -> None:
    """Train every run of the suite (output folder ``out``) in ``jobs`` processes; raise on a failed or interrupted
    process."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("--jobs: not under torchrun (the ranks already share the work); drop --jobs")
    logs = out / "jobs"
    logs.mkdir(parents=True, exist_ok=True)
    extra = threads_per_job(jobs, args.overrides)
    procs = []
    for share in seed_shares(seeds, jobs):
        log = logs / f"seeds-{'-'.join(map(str, share))}.log"
        cmd = [sys.executable, "-m", "darkseg", *child_argv(args, out, share, extra)]
        with log.open("w") as f:
            procs.append((share, log, subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)))
    print(f"training seeds {' | '.join(','.join(map(str, s)) for s, _, _ in procs)} in {len(procs)} processes"
          f"{' (' + extra[0] + ' each)' if extra else ''}; logs: {logs}", flush=True)
    try:
        while any(p.poll() is None for _, _, p in procs):
            time.sleep(2)
    except KeyboardInterrupt:
        for _, _, p in procs:  # each process stops at its next iteration and keeps its checkpoints
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for _, _, p in procs:
            p.wait()
        raise
    failed = [(s, log, p.returncode) for s, log, p in procs if p.returncode != 0]
    if failed:
        share, log, rc = failed[0]
        raise DarksegError(f"--jobs: the process of seeds {','.join(map(str, share))} failed (exit {rc}); its output "
                          f"is in {log}; rerun the same command to continue (finished runs are reused)")
