"""Time darkseg's PAMR against a straightforward implementation of the same algorithm (ssss.md §3, §8).

The straightforward one does what the SSSS code does: per dilation, replicate padding and grouped 3x3 one-hot
"shift" convolutions, concatenated into a (B, C, 48, H, W) tensor every iteration. Both run without autograd on the
same inputs (image U[0, 1], mask = softmax of N(0, 1) logits); medians after warm-up calls. Timings are noisy on a
shared machine: compare only figures taken in one run.

    python benchmarks/bench_pamr.py [--threads 2] [--calls 10] [--ref-calls 3] [--sizes 64 81 321]
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from darkseg.models.ops.pamr import PAMR


def _one_hot_kernel(with_centre: bool, centre_value: float = 0.0) -> torch.Tensor:
    """(P, 1, 3, 3) kernels: one tap each (P = 9 with the centre, else 8), optionally centre_value at the centre."""
    taps = [(i, j) for i in range(3) for j in range(3) if with_centre or (i, j) != (1, 1)]
    kernel = torch.zeros(len(taps), 1, 3, 3)
    for n, (i, j) in enumerate(taps):
        kernel[n, 0, i, j] = 1.0
        if not with_centre:
            kernel[n, 0, 1, 1] = centre_value
    return kernel


def _local(x: torch.Tensor, kernel: torch.Tensor, dilations: Sequence[int]) -> torch.Tensor:
    """Dilated shift convolutions per dilation, concatenated to (B, K, P * |D|, H, W)."""
    b, k, h, w = x.shape
    flat = x.reshape(b * k, 1, h, w)
    taps = [F.conv2d(F.pad(flat, [d] * 4, mode="replicate"), kernel, dilation=d) for d in dilations]
    return torch.cat(taps, dim=1).view(b, k, -1, h, w)


def straightforward_pamr(
    image: torch.Tensor, mask: torch.Tensor, num_iter: int = 10, dilations: Sequence[int] = (1, 2, 4, 8, 12, 24)
) -> torch.Tensor:
    """Reference-style PAMR materialising the (B, C, 48, H, W) neighbour tensor each iteration (ssss.md §3)."""
    mask = F.interpolate(mask, size=image.shape[-2:], mode="bilinear", align_corners=True)
    sigma = _local(image, _one_hot_kernel(True), dilations).std(dim=2, keepdim=True)
    diff = _local(image, _one_hot_kernel(False, centre_value=-1.0), dilations).abs()
    weights = torch.softmax((-diff / (1e-8 + 0.1 * sigma)).mean(dim=1, keepdim=True), dim=2)
    copy = _one_hot_kernel(False)
    for _ in range(num_iter):
        mask = (_local(mask, copy, dilations) * weights).sum(dim=2)
    return mask


def _median_seconds(fn: Callable[[], torch.Tensor], calls: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--classes", type=int, default=21)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 81, 321])
    parser.add_argument("--calls", type=int, default=10, help="timed calls of darkseg's PAMR")
    parser.add_argument("--ref-calls", type=int, default=3, help="timed calls of the straightforward PAMR")
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("command: python " + shlex.join(sys.argv))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, B={args.batch}, C={args.classes}")
    pamr = PAMR(num_iter=10, dilations=(1, 2, 4, 8, 12, 24))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for size in args.sizes:
            image = torch.rand(args.batch, 3, size, size, generator=g)
            mask = torch.softmax(torch.randn(args.batch, args.classes, size, size, generator=g), dim=1)
            diff = (pamr(image, mask) - straightforward_pamr(image, mask)).abs().max().item()
            fast = _median_seconds(lambda image=image, mask=mask: pamr(image, mask), args.calls, args.warmup)
            ref = _median_seconds(lambda image=image, mask=mask: straightforward_pamr(image, mask), args.ref_calls,
                                  min(args.warmup, 1))
            print(
                f"{size}x{size}: darkseg {fast * 1e3:.1f} ms (median of {args.calls}), "
                f"straightforward {ref * 1e3:.1f} ms (median of {args.ref_calls}), "
                f"speed-up {ref / fast:.1f}x, max |diff| {diff:.1e}"
            )


if __name__ == "__main__":
    main()
