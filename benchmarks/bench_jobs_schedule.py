"""Wall time of ``darkseg reproduce --jobs N`` under two run orders, replayed from the measured times of a finished
suite: the declaration order (``order_runs``: per seed, needed columns first) and ``schedule_order`` (per seed, by
decreasing upward rank of the columns' declared costs), with the claim rule of ``runner.run_claimed``: a free process
takes the first unclaimed run whose needed runs of the same seed are finished, or waits for the next one to finish.

A run's time is read from its folder: from ``config.yaml`` (written when training starts) to ``eval_metrics.json``
(written when its evaluation ends). The replay leaves out the time before the first run (images, pretraining).

    python benchmarks/bench_jobs_schedule.py --out runs/reproduce-full [--paper dgkd-wlss] [--suite scenes] \\
        [--columns teacher,baseline,dgkd,dgkd_dgf2] [--seeds 0,1,2,3,4] [--jobs 2]
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from darkseg.reproduce.papers import PAPERS
from darkseg.reproduce.tables import Column, order_runs, schedule_order


def run_minutes(out: Path, key: str, seed: int) -> float:
    """Minutes from a finished run's start (its config.yaml) to the end of its evaluation (eval_metrics.json)."""
    run = out / "runs" / key / f"seed{seed}"
    start, end = run / "config.yaml", run / "eval_metrics.json"
    if not end.is_file():
        sys.exit(f"{end}: missing; this replay needs finished, evaluated runs (run the suite first)")
    return (end.stat().st_mtime - start.stat().st_mtime) / 60


def replay(order: tuple[Column, ...], seeds: list[int], minutes: dict[tuple[str, int], float], jobs: int) -> float:
    """Minutes until the last of ``jobs`` processes finishes, each taking runs as ``run_claimed`` does."""
    pending = [(col, seed) for seed in seeds for col in order]
    free_at = [0.0] * jobs
    done: dict[tuple[str, int], float] = {}
    while pending:
        lane = min(range(jobs), key=free_at.__getitem__)
        now = free_at[lane]
        ready = next(((col, seed) for col, seed in pending
                      if all(done.get((n.column, seed), float("inf")) <= now for n in col.needs)), None)
        if ready is None:  # wait for the next run to finish
            free_at[lane] = min(t for t in done.values() if t > now)
            continue
        pending.remove(ready)
        col, seed = ready
        free_at[lane] = done[(col.key, seed)] = now + minutes[(col.key, seed)]
    return max(free_at)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="the suite's --out folder, with finished runs")
    parser.add_argument("--paper", default="dgkd-wlss")
    parser.add_argument("--suite", default="scenes")
    parser.add_argument("--columns", default="teacher,baseline,dgkd,dgkd_dgf2", help="the columns that were run")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    columns = PAPERS[args.paper].suites[args.suite].columns()
    wanted = tuple(args.columns.split(","))
    seeds = [int(s) for s in args.seeds.split(",")]
    declared = order_runs(columns, wanted)
    minutes = {(col.key, seed): run_minutes(args.out, col.key, seed) for col in declared for seed in seeds}
    print("command: python " + " ".join(shlex.quote(a) for a in sys.argv))
    for col in declared:
        times = " / ".join(f"{minutes[(col.key, s)]:.1f}" for s in seeds)
        print(f"  {col.key:>12} (cost {col.cost:g}): {times} min")
    print(f"{args.jobs} processes, {len(minutes)} runs, {sum(minutes.values()):.1f} min of runs; "
          f"bound (work / processes): {sum(minutes.values()) / args.jobs:.1f} min")
    for name, order in (("declaration order", declared), ("schedule_order", schedule_order(columns, wanted))):
        print(f"  {name:>17} [{', '.join(c.key for c in order)}]: {replay(order, seeds, minutes, args.jobs):.1f} min")


if __name__ == "__main__":
    main()
