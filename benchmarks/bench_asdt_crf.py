"""Share of an ASDT training iteration taken by the reliable-label CRF work (B^ct with R^ct: two dense CRFs per
image; B^st / fused labels: one more in seg-teacher iterations), asdt_knowledge.py.

Two settings of ``method.knowledge.workers``, on the same batch: 0 (the CRFs run inline in the step, so the step's
wait for the labels *is* the CRF work) and ``--workers`` (the CRFs run in the process pool while the structure loss
is computed; the step waits only for what is left). Per setting and PWM level (class-teacher / seg-teacher
iterations), the medians over ``--rounds`` iterations (after ``--warmup``) of: the whole iteration (training step +
backward + SGD step) and the time the step waits for the labels, in wall time and, inline, in this process's CPU
time (robust to other jobs on the machine); the alternative strategy's figure is the PWM-weighted mean (T_l
class-teacher + T_h seg-teacher iterations). Synthetic batch: smooth random images at the config's crop size and
batch size, 1-3 image labels each (the CRF cost depends on the image size and on the number of present classes, not
on content). Timings are noisy on a shared machine: compare only figures of one run.

    OMP_NUM_THREADS=1 python benchmarks/bench_asdt_crf.py [--config configs/asdt/scenes_asdt.yaml] [--threads 1]
        [--workers 1] [--rounds 10] [--warmup 2] [key=value ...]
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from darkseg.config import load_config
from darkseg.engine.runner import build_method


class TimedWait:
    """Wraps the method's knowledge workers: records how long each ``pending()`` call blocks the step (wall and this
    process's CPU seconds)."""

    def __init__(self, inner) -> None:  # noqa: ANN001 (KnowledgeWorkers)
        self.inner, self.waits = inner, []

    def submit(self, jobs):  # noqa: ANN001, ANN201
        pending = self.inner.submit(jobs)

        def wait():  # noqa: ANN202
            t0, c0 = time.perf_counter(), time.process_time()
            out = pending()
            self.waits.append((time.perf_counter() - t0, time.process_time() - c0))
            return out

        return wait

    def close(self) -> None:
        self.inner.close()


def synthetic_batch(n: int, size: int, num_fg: int, seed: int) -> dict:
    """Smooth random images (8×8 noise upsampled) and 1-3 present classes per image."""
    g = torch.Generator().manual_seed(seed)
    image = F.interpolate(torch.rand(n, 3, 8, 8, generator=g), size=(size, size), mode="bilinear",
                          align_corners=False)
    rng = np.random.default_rng(seed)
    labels = torch.zeros(n, num_fg)
    for i in range(n):
        labels[i, rng.choice(num_fg, size=rng.integers(1, 4), replace=False)] = 1.0
    return {"image": image, "labels": labels}


def measure(cfg_path: str, overrides: list[str], workers: int, args: argparse.Namespace) -> dict[str, tuple]:
    """{level: (median iteration (wall s, CPU s), median wait (wall s, CPU s), iterations of the level per PWM
    period)} for the levels (student learns from B^ct: class-teacher; from B^st or a fusion: seg-teacher) the
    strategy uses. CPU = this process's CPU time (the pool's is not in it)."""
    cfg = load_config(cfg_path, [*overrides, f"method.knowledge.workers={workers}"])
    method = build_method(cfg, load_external=False)
    method.workers = TimedWait(method.workers)
    batch = synthetic_batch(cfg.data.batch_size, cfg.data.augment.crop_size, method.info.num_classes - 1, 0)
    params = [p for p in method.nets.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=1e-4, momentum=0.9)
    levels: dict[str, list[int]] = {}  # level -> its iterations in one PWM period after distill_start
    for t in range(method.mcfg.distill_start, method.mcfg.distill_start + method.mcfg.pwm.period):
        levels.setdefault("class-teacher" if method.student_target(t) is None else "seg-teacher", []).append(t)
    method.nets.train()
    out = {}
    try:
        for level, its in levels.items():
            totals = []
            method.workers.waits.clear()
            for _ in range(args.warmup + args.rounds):
                t0, c0 = time.perf_counter(), time.process_time()
                losses = method.training_step("main", batch, its[0], {}).losses
                sum(losses.values()).backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                totals.append((time.perf_counter() - t0, time.process_time() - c0))
            waits = method.workers.waits[args.warmup:]
            out[level] = (_medians(totals[args.warmup:]), _medians(waits), len(its))
    finally:
        method.workers.close()
    return out


def _medians(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)


def _line(name: str, total: Sequence[float], wait: Sequence[float], cpu: bool) -> str:
    text = (f"  {name:24s} iteration {total[0] * 1e3:7.1f} ms wall, waits for labels {wait[0] * 1e3:7.1f} ms "
            f"= {100 * wait[0] / total[0]:4.1f} %")
    if cpu:
        text += (f"; CPU {total[1] * 1e3:7.1f} ms, of it CRF work {wait[1] * 1e3:7.1f} ms "
                 f"= {100 * wait[1] / total[1]:4.1f} %")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/asdt/scenes_asdt.yaml")
    parser.add_argument("overrides", nargs="*", help="config overrides key=value")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the training process")
    parser.add_argument("--workers", type=int, default=1, help="knowledge processes of the pooled setting")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print("$ " + " ".join(shlex.quote(a) for a in ["python", *sys.argv]))
    cfg = load_config(args.config, args.overrides)
    print(f"{args.config}: strategy {cfg.method.strategy}, batch {cfg.data.batch_size} × {cfg.data.augment.crop_size}"
          f"², CAM scales {list(cfg.method.cam_scales)}, {args.threads} torch thread(s)")
    for workers in (0, args.workers):
        res = measure(args.config, args.overrides, workers, args)
        where = "inline (the wait is the CRF work)" if workers == 0 else f"{workers} pool process(es)"
        print(f"knowledge.workers={workers}, {where}:")
        for level, (total, wait, _) in res.items():
            print(_line(level, total, wait, workers == 0))
        if len(res) == 2:
            counts = {k: v[2] for k, v in res.items()}
            n = sum(counts.values())
            total, wait = ([sum(v[i][j] * v[2] for v in res.values()) / n for j in (0, 1)] for i in (0, 1))
            print(_line(f"PWM-weighted ({counts['class-teacher']}:{counts['seg-teacher']})", total, wait, workers == 0))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
