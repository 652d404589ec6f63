"""``darkseg cam``: class maps and pseudo masks of a split, with the background-threshold sweep."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from darkseg.commands._common import add_config_arguments, load

HELP = "write CAMs and pseudo masks of a split and sweep the background threshold (mIoU per threshold)"
ORDER = 35


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--weights", type=Path, help="default: <run>/model_final.safetensors")
    parser.add_argument("--split", default="train", help="split to process (default: train)")
    parser.add_argument("--out", type=Path, help="output folder (default: <run>/cam/<split>)")
    parser.add_argument("--thresholds", default="0.05:0.95:0.05", help="start:stop:step of the sweep (inclusive)")
    parser.add_argument("--no-flip", action="store_true", help="do not average with the flipped image")
    parser.add_argument("--scales", default="1", help="comma-separated test scales summed (SEAM: 0.5,1,1.5,2)")
    parser.add_argument("--minmax", action="store_true", help="per-class min-max normalisation (SEAM) instead of max")
    parser.add_argument("--json", action="store_true", help="print the sweep result as JSON")


def _thresholds(spec: str) -> list[float]:
    from darkseg.errors import DarksegError

    try:
        start, stop, step = (float(v) for v in spec.split(":"))
    except ValueError:
        raise DarksegError(f"--thresholds {spec!r}: expected start:stop:step, e.g. 0.05:0.95:0.05") from None
    if step <= 0 or stop < start:
        raise DarksegError(f"--thresholds {spec!r}: need start <= stop and step > 0")
    n = int(round((stop - start) / step)) + 1
    return [round(start + i * step, 4) for i in range(n)]


def _scales(spec: str) -> tuple[float, ...]:
    from darkseg.errors import DarksegError

    try:
        scales = tuple(float(v) for v in spec.split(","))
    except ValueError:
        raise DarksegError(f"--scales {spec!r}: expected comma-separated numbers, e.g. 0.5,1,1.5,2") from None
    if any(s <= 0 for s in scales):
        raise DarksegError(f"--scales {spec!r}: scales must be positive")
    return scales


def run(args: argparse.Namespace) -> int:
    cfg = load(args)
    if cfg is None:
        return 0
    from darkseg.data.registry import build_dataset
    from darkseg.data.transforms import EvalTransform
    from darkseg.engine.cam_sweep import sweep
    from darkseg.engine.runner import eval_views, input_view_of, load_deployed, setup_runtime

    thresholds = _thresholds(args.thresholds)
    scales = _scales(args.scales)
    device, _ = setup_runtime(cfg)
    model = load_deployed(cfg, args.weights, device)
    view = input_view_of(cfg)
    dataset = build_dataset(cfg.data, args.split, eval_views(model, view), EvalTransform())
    out = args.out or cfg.run_dir() / "cam" / args.split
    result = sweep(model, dataset, view, device, out, thresholds, cfg.data.num_workers, cfg.data.on_error,
                   flip=not args.no_flip, scales=scales, minmax=args.minmax)
    (out / "cam_sweep.json").write_text(json.dumps(result, indent=2))
    if args.json:
        print(json.dumps(result))
        return 0
    for t, miou in result["miou_per_threshold"].items():
        print(f"bg threshold {t}: mIoU {miou:6.2f}")
    print(f"best: threshold {result['best_threshold']:.2f}, mIoU {result['best_miou']:.2f}; "
          f"pseudo masks in {result['pseudo_masks']}")
    return 0
