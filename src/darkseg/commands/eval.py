"""``darkseg eval``: mIoU, PixAcc and the per-class IoU table of a trained model on a split."""

from __future__ import annotations

import argparse
import json
import math
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
    parser.add_argument("--datasets", help="comma-separated test sets, e.g. dark_zurich_val,acdc_night_val,"
                        "nighttime_driving (NAME, NAME_SPLIT or NAME:SPLIT; roots from data.roots, else data/NAME)")
    parser.add_argument("--predictions", type=Path, help="with --datasets: write unlabelled splits (e.g. "
                        "dark_zurich_test) as server prediction PNGs under this folder")


def json_safe(value: object) -> object:
    """NaN/Inf (e.g. the IoU of a class absent from the split) become ``null``: bare NaN is not JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def run(args: argparse.Namespace) -> int:
    cfg = load(args)
    if cfg is None:
        return 0
    from darkseg.engine.distributed import is_main_process
    from darkseg.engine.runner import evaluate_split

    if args.use_gt_labels:
        cfg.eval.inference.class_filter = "gt"
    split = args.split or cfg.eval.split
    if args.datasets:
        return _run_sets(args, cfg, split)
    metrics, masks = evaluate_split(cfg, args.weights, split, progress=not args.json)
    used = metrics.inference["class_filter"] if metrics.inference else cfg.eval.inference.class_filter
    result = json_safe({"split": split, "masks": masks, "class_filter": used,
                        **metrics.to_dict()})
    if not is_main_process():  # under torchrun every rank computed the same metrics; rank 0 reports them
        return 0
    if not _write_json(args, result):
        chosen = metrics.inference
        if chosen is None:
            how = cfg.eval.inference.class_filter
        else:
            from darkseg.engine.inference_search import setting_words

            how = f"{setting_words(chosen)}; chosen on the {chosen['selected_on']} split"
        print(f"split {split}, masks {masks} (classes filtered by {how})")
        print(metrics.table())
    return 0


def _write_json(args: argparse.Namespace, result: dict) -> bool:
    """Write ``result`` to ``--out`` if given and print it with ``--json``; True when it was printed."""
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2, allow_nan=False))
    if args.json:
        print(json.dumps(result, allow_nan=False))
    return bool(args.json)


def _run_sets(args: argparse.Namespace, cfg, split: str) -> int:  # noqa: ANN001 - ExperimentConfig
    from darkseg.commands._eval_sets import evaluate_sets
    from darkseg.engine.distributed import is_main_process
    from darkseg.metrics import SegMetrics

    if cfg.eval.inference_search is not None:
        from darkseg.errors import ConfigError

        raise ConfigError("eval --datasets does not choose thresholds on a validation split "
                          "(eval.inference_search); evaluate one --split at a time, or set eval.inference_search=null")
    tokens = [t.strip() for t in args.datasets.split(",") if t.strip()]
    results = evaluate_sets(cfg, args.weights, tokens, split, args.predictions, progress=not args.json)
    result = json_safe({"split": split, "datasets": results})
    if not is_main_process() or _write_json(args, result):
        return 0
    for token, metrics in results.items():
        if "predictions" in metrics:
            print(f"{token}: predictions written to {metrics['predictions']} (zip labelTrainIds, "
                  "labelTrainIds_invalid, confidence for the server)")
            continue
        print(f"== {token}")
        print(SegMetrics(metrics["miou"], metrics["pixacc"], metrics["mean_acc"], metrics["per_class_iou"]).table())
    scored = {t: m["miou"] for t, m in results.items() if "miou" in m}
    if len(scored) > 1:
        print("mIoU: " + ", ".join(f"{t} {v:.2f}" for t, v in scored.items()))
    return 0
