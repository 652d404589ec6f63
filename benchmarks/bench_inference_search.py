"""Scoring the inference-threshold grid on one batch (``eval.inference_search``): every setting filtered and
argmaxed over all C channels, then counted with ``ConfusionMatrix.update`` (before), against ``grid_labels`` (one
foreground max per class filter, one comparison per background power) counted with ``update_from_offsets`` (the
ground truth prepared once per batch). The network's forward is not timed: it is the same in both.

Shapes (B, C, H, W): a scenes evaluation batch (32, 9, 96, 96) and a VOC-size batch (8, 21, 321, 321), with the
default grid (6 score cuts + no filter, 10 background powers: 70 settings). Median of ``--rounds`` after one warm-up call, milliseconds; the
confusion matrices of both ways must be equal.

    python benchmarks/bench_inference_search.py [--threads 1] [--rounds 5]
"""

from __future__ import annotations

import argparse
import shlex
import sys

import torch
from bench_argmax import median_ms  # the sibling script (python puts benchmarks/ on the path)

from darkseg.engine.config import InferenceConfig, InferenceSearchConfig
from darkseg.engine.inference import filter_classes, labels_from_probs
from darkseg.engine.inference_search import candidates, grid_labels
from darkseg.metrics import ConfusionMatrix

SHAPES = [(32, 9, 96, 96), (8, 21, 321, 321)]


def per_setting(masks, scores, target, grid) -> list[ConfusionMatrix]:
    matrices = [ConfusionMatrix(masks.shape[1]) for _ in grid]
    for setting, cm in zip(grid, matrices):
        cm.update(labels_from_probs(filter_classes(masks, scores, setting), None, setting), target)
    return matrices


def shared(masks, scores, target, grid) -> list[ConfusionMatrix]:
    matrices = [ConfusionMatrix(masks.shape[1]) for _ in grid]
    offsets = matrices[0].target_offsets(target)
    for pred, cm in zip(grid_labels(masks, scores, grid), matrices):
        cm.update_from_offsets(pred, offsets)
    return matrices


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    grid = candidates(InferenceConfig(), InferenceSearchConfig())
    print(f"{len(grid)} settings; {'shape':<20} {'per setting ms':>15} {'shared ms':>10} {'speed-up':>9}  same counts")
    for b, c, h, w in SHAPES:
        masks = torch.softmax(3 * torch.randn(b, c, h, w, generator=gen), 1)
        scores = torch.rand(b, c - 1, generator=gen)
        target = torch.randint(0, c, (b, h, w), generator=gen)
        target[:, : h // 10] = 255
        same = all(torch.equal(x.mat, y.mat) for x, y in zip(per_setting(masks, scores, target, grid),
                                                              shared(masks, scores, target, grid)))
        before = median_ms(lambda: per_setting(masks, scores, target, grid), args.rounds)  # noqa: B023
        after = median_ms(lambda: shared(masks, scores, target, grid), args.rounds)  # noqa: B023
        print(f"{'':<{len(str(len(grid))) + 11}}{str((b, c, h, w)):<20} {before:>15.0f} {after:>10.0f} "
              f"{before / after:>8.1f}×  {same}")
    print(f"threads {args.threads}; command: python {' '.join(shlex.quote(a) for a in sys.argv)}")


if __name__ == "__main__":
    main()
