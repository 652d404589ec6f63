"""``darkseg eval``: mIoU, PixAcc and the per-class IoU table of a trained model on a split."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from darkseg.commands._common import add_config_arguments, load

HELP = "evaluate a trained model on a split (mIoU, PixAcc, per-class IoU)"
ORDER = 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--weights", type=Path,
                        help="exported weights or checkpoint dir (default: <run>/model_final.safetensors)")
    parser.add_argument("--split", help="split to evaluate (default: eval.split of the config)")
    parser.add_argument("--use-gt-labels", action="store_true",
                        help="filter classes by the ground-truth image labels (reported separately)")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.add_argument("--out", type=Path, help="also write the metrics JSON to this file")


def run(args: argparse.Namespace) -> int:
    cfg = load(args)
    if cfg is None:
        return 0
    from darkseg.engine.runner import evaluate_config

    if args.use_gt_labels:
        cfg.eval.inference.class_filter = "gt"
    split = args.split or cfg.eval.split
    metrics = evaluate_config(cfg, args.weights, split, progress=not args.json)
    result = {"split": split, "class_filter": cfg.eval.inference.class_filter, **metrics.to_dict()}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"split {split} (classes filtered by {cfg.eval.inference.class_filter})")
        print(metrics.table())
    return 0
