"""Generation time of the built-in ``scenes`` benchmark (default config unless told otherwise).

    python benchmarks/bench_scenes.py [--workers N] [--size 96] [--out DIR]

Prints wall time, CPU time of the parent and its worker processes (a busy machine inflates wall time, not CPU time),
images per second and the command. The issue's target: the defaults in under 60 s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from darkseg.data.scenes import ScenesConfig, generate_scenes


def _cpu_seconds() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=0, help="processes (0 = one per CPU core)")
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--out", type=Path, default=None, help="keep the output here (default: a temporary folder)")
    args = parser.parse_args()
    cfg = ScenesConfig(size=args.size, workers=args.workers)
    n = cfg.n_train + cfg.n_val + cfg.n_test + 2 * (cfg.n_pairs_train + cfg.n_pairs_val)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "scenes"
        cpu, start = _cpu_seconds(), time.perf_counter()
        generate_scenes(out, cfg, progress=False)
        wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    cores = len(os.sched_getaffinity(0))
    print(f"scenes {cfg.size}x{cfg.size}: {n} images (+ dark, depth, masks) in {wall:.1f} s wall, {cpu:.1f} s CPU "
          f"({n / wall:.0f} img/s; workers={cfg.workers or cores}, {cores} cores, load {os.getloadavg()[0]:.1f})")
    print("command: python " + " ".join(sys.argv))


if __name__ == "__main__":
    main()
