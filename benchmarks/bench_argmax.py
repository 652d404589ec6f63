"""Label maps from score maps: ``torch.argmax(dim)`` against ``Tensor.max(dim).indices``
(``models.ops.argmax.class_argmax``) on CPU, per shape and thread count, and optionally the whole evaluation of a
finished run (validation-split threshold search + test split) with the implementation darkseg uses now.

Shapes (B, C, H, W): a scenes evaluation batch (32, 9, 96, 96), a scenes pseudo-label batch as uint8
(8, 9, 96, 96), a VOC-size batch (8, 21, 321, 321). Median of ``--rounds`` calls, milliseconds.

    python benchmarks/bench_argmax.py [--threads 1] [--rounds 10] [--run runs/NAME/runs/baseline/seed0]
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from darkseg.models.ops.argmax import class_argmax

SHAPES = [((32, 9, 96, 96), torch.float32), ((8, 9, 96, 96), torch.uint8), ((8, 21, 321, 321), torch.float32)]


def median_ms(fn: Callable[[], object], rounds: int) -> float:
    fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--run", type=Path, default=None, help="a finished run folder (config.yaml, model_final)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    print(f"{'shape':<22} {'dtype':<8} {'argmax ms':>10} {'max().indices ms':>17} {'speed-up':>9}  same")
    for shape, dtype in SHAPES:
        x = torch.rand(shape, generator=gen)
        x = (x > 0.7).to(dtype) if dtype == torch.uint8 else x
        a = median_ms(lambda: x.argmax(1), args.rounds)  # noqa: B023
        b = median_ms(lambda: class_argmax(x), args.rounds)  # noqa: B023
        same = torch.equal(x.argmax(1), class_argmax(x))
        print(f"{str(shape):<22} {str(dtype).split('.')[-1]:<8} {a:>10.2f} {b:>17.2f} {a / b:>8.1f}×  {same}")
    if args.run is not None:
        from darkseg.engine.runner import read_run_config, evaluate_split

        cfg = read_run_config(args.run / "config.yaml")
        start = time.perf_counter()
        metrics, _ = evaluate_split(cfg, args.run / "model_final.safetensors", cfg.eval.split, progress=False)
        print(f"evaluation of {args.run} ({cfg.eval.split} split, thresholds searched on "
              f"{cfg.eval.inference_search.split if cfg.eval.inference_search else 'nothing'}): "
              f"{time.perf_counter() - start:.1f} s, mIoU {metrics.miou:.2f}")
    print(f"threads {args.threads}; command: python {' '.join(shlex.quote(a) for a in sys.argv)}")


if __name__ == "__main__":
    main()
