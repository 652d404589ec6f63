"""Time per training iteration of DGKD-WLSS divided by that of the dark student baseline (issues 6 §6 and 20); any
method's config against its baseline's with ``--dgkd METHOD_CONFIG --student BASELINE_CONFIG`` (e.g. CCDistill
against the source-only segmenter, SEAM+PLDA against SEAM).

Each variant runs in a fresh subprocess (clean peak memory), alternating over several rounds; an iteration is the
full trainer step (``engine.profile.StepBench``: forward, losses, backward, optimiser step) on a synthetic batch at
the config's batch and crop, in the recipe's precision mapped to the device (fp16 → bf16 off CUDA, bf16 → float32
on a CPU without native bfloat16). The teacher has random weights (its cost does not depend on them). The ratio is
the median of the per-round ratios (each round times both variants back to back, so slow phases of a shared machine
affect both); the range over rounds is printed with it. Per part: the forward time of each network inside the full
step (the teacher's is all of its cost), and each distillation level's forward + backward timed alone on the inputs
it received in the step (its gradient into the student's backward is not included).

    python benchmarks/bench_dgkd_overhead.py                       # CPU small configs (scenes)
    python benchmarks/bench_dgkd_overhead.py --student configs/dgkd_wlss/voc_student.yaml \\
        --dgkd configs/dgkd_wlss/voc_dgkd.yaml --batch 1 --rounds 2 --iters 2 --warmup 1   # VOC recipe, crop 321
    python benchmarks/bench_dgkd_overhead.py --student ... --dgkd ... --dgkd-override method.levels.layer3.bottleneck_ratio=0.25
    python benchmarks/bench_dgkd_overhead.py --student configs/daynight/scenes_source_only_deeplabv2.yaml \\
        --dgkd configs/ccdistill/scenes_ccdistill.yaml --threads 1 --rounds 2 --iters 5
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path


def level_seconds(bench, iters: int, warmup: int) -> dict[str, float]:
    """Median forward + backward seconds of each distillation level, alone, on the inputs of one training step."""
    import torch

    from darkseg.distill import MultiLevelDistiller
    from darkseg.engine.trainer import autocast_context

    levels = {f"{net_name}.{name}": level for net_name, net in bench.method.nets.items()
              if isinstance(net, MultiLevelDistiller) for name, level in net.levels.items()}
    inputs: dict[str, tuple] = {}
    handles = [level.register_forward_pre_hook(lambda m, a, name=name: inputs.__setitem__(name, a))
               for name, level in levels.items()]
    bench.step()
    for h in handles:
        h.remove()
    out = {}
    for name, level in levels.items():
        f_s, f_t, generator = inputs[name]
        times = []
        for i in range(warmup + iters):
            x = f_s.detach().clone().requires_grad_()
            bench._sync()
            t0 = time.perf_counter()
            with autocast_context(bench.cfg.train.amp, bench.device):
                losses = level(x, f_t.detach(), generator)
            torch.stack([v.float() for v in losses.values()]).sum().backward()
            bench._sync()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
        level.zero_grad(set_to_none=True)
        out[name] = statistics.median(times)
    return out


def measure(config: str, device: str, threads: int, iters: int, warmup: int, overrides: list[str]) -> dict:
    """Seconds per iteration (median), per-part seconds and peak memory of one config's training step."""
    import torch

    from darkseg.engine.profile import StepBench, bench_config

    torch.set_num_threads(threads)
    cfg, added = bench_config(config, device, overrides)
    bench = StepBench(cfg)
    result = bench.run(iters, warmup).to_json()
    result["levels"] = level_seconds(bench, iters, min(warmup, 1))
    result["added_overrides"] = added
    return result


def _ms(x: float | None) -> str:
    return f"{x * 1000:9.1f}" if x is not None else " " * 9


def report(args: argparse.Namespace, results: dict[str, list[dict]]) -> None:
    med = {k: statistics.median(r["s_per_iter"] for r in v) for k, v in results.items()}
    mem = {k: max(r["peak_mib"] for r in v) for k, v in results.items()}
    ratios = [d["s_per_iter"] / s["s_per_iter"] for s, d in zip(results["student"], results["dgkd"], strict=True)]
    first = {k: v[0] for k, v in results.items()}
    load = os.getloadavg()
    print(f"command: python {' '.join(shlex.quote(a) for a in sys.argv)}")
    print(f"device {args.device}, {args.threads} threads, batch {first['student']['batch']}, crop "
          f"{first['student']['crop']}, precision baseline {first['student']['amp']} / method {first['dgkd']['amp']}, "
          f"median over {args.rounds} rounds × {args.iters} iterations; load average after "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    for key in results:
        if first[key]["added_overrides"]:
            print(f"{key}: added {' '.join(first[key]['added_overrides'])}")
    names = {k: Path(getattr(args, k)).stem for k in results}
    w = max(14, *(len(n) + 2 for n in names.values()))  # column width: the config names stay apart
    print(f"{'ms per part':50s}{names['student']:>{w}s}{names['dgkd']:>{w}s}")

    def median_of(key: str, section: str, part: str) -> float | None:
        values = [r[section][part] for r in results[key] if part in r[section]]
        return statistics.median(values) if values else None

    print(f"{'full training iteration':50s}{_ms(med['student']):>{w}s}{_ms(med['dgkd']):>{w}s}")
    parts = sorted({p for v in results.values() for r in v for p in r["forward"]})
    for part in parts:
        print(f"{'  forward of ' + part + ' (inside the step)':50s}"
              f"{_ms(median_of('student', 'forward', part)):>{w}s}{_ms(median_of('dgkd', 'forward', part)):>{w}s}")
    levels = sorted({p for r in results["dgkd"] for p in r["levels"]})
    for part in levels:
        print(f"{'  level ' + part + ' forward+backward (alone)':50s}{'':>{w}s}"
              f"{_ms(median_of('dgkd', 'levels', part)):>{w}s}")
    if levels:
        rest = med["dgkd"] - sum(median_of("dgkd", "levels", p) or 0.0 for p in levels) - sum(
            median_of("dgkd", "forward", p) or 0.0 for p in parts if p == "teacher")
        print(f"{'  rest (iteration − teacher − levels)':50s}{_ms(med['student']):>{w}s}{_ms(rest):>{w}s}")
    print(f"{'peak memory (MiB)':50s}{mem['student']:{w}.0f}{mem['dgkd']:{w}.0f}")
    target = "; DGKD-WLSS target ≤ 1.4" if levels else ""  # the DGKD-WLSS issue's target, for its distiller only
    print(f"overhead ratio  : {statistics.median(ratios):.2f} (median of rounds; range {min(ratios):.2f}-"
          f"{max(ratios):.2f}{target})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--student", default="configs/dgkd_wlss/scenes_student.yaml", help="the baseline config")
    p.add_argument("--dgkd", default="configs/dgkd_wlss/scenes_dgkd.yaml", help="the method config")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, help="data.batch_size of both configs (default: each config's)")
    p.add_argument("--crop", type=int, help="data.augment.crop_size of both configs (default: each config's)")
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--student-override", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="overrides of the baseline config only")
    p.add_argument("--dgkd-override", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="overrides of the method config only")
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one config in this process
    p.add_argument("overrides", nargs="*", help="config overrides applied to both configs")
    args = p.parse_args()
    shared = list(args.overrides)
    if args.batch is not None:
        shared.append(f"data.batch_size={args.batch}")
    if args.crop is not None:
        shared.append(f"data.augment.crop_size={args.crop}")
    if args.one:
        print(json.dumps(measure(args.one, args.device, args.threads, args.iters, args.warmup, shared)))
        return
    results: dict[str, list[dict]] = {"student": [], "dgkd": []}
    for _ in range(args.rounds):
        for name, runs in results.items():
            cmd = [sys.executable, __file__, "--one", getattr(args, name), "--device", args.device,
                   "--threads", str(args.threads), "--iters", str(args.iters), "--warmup", str(args.warmup),
                   "--", *shared, *getattr(args, f"{name}_override")]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode:
                sys.exit(f"measuring {getattr(args, name)} failed:\n{proc.stderr.strip()[-3000:]}")
            runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    report(args, results)


if __name__ == "__main__":
    main()
