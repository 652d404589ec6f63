"""``darkseg align``: coarse homography + fine flow for every day/night pair of a split, cached, with quality."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "align the day/night pairs of a dataset split (homography + DIS flow), cached, with quality and preview"
ORDER = 45


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from darkseg.align.estimate import AlignConfig

    parser.description = (
        "For each night image of SPLIT and its paired day image: a homography from OpenCV features + RANSAC "
        "(coarse), refined by DIS optical flow (fine), both directions, cached per pair in OUT (resumable). Prints "
        "per-split quality (RANSAC inlier ratio, photometric error after warping; end-point error against the "
        "true camera map when one is known, e.g. scenes_daynight) and writes OUT/report.json and OUT/preview.png. "
        "A pair that cannot be read or aligned is reported and excluded from training, never silently used."
    )
    parser.add_argument("name", metavar="DATASET", help="dataset with day/night pairs: dark_zurich, acdc_night, "
                        "scenes_daynight, folder (with day/)")
    parser.add_argument("root", metavar="ROOT", type=Path, help="dataset root folder")
    parser.add_argument("--split", default="train", help="split to align (default train; scenes_daynight: "
                        "night_train, night_val, night_test)")
    parser.add_argument("--out", type=Path, help="cache folder (default ROOT/align/SPLIT, where data.align_dir "
                        "looks by default)")
    parser.add_argument("--truth", type=Path, help="JSON {pair id: 2x3 or 3x3 night->day pixel map} to measure "
                        "the flow error (default ROOT/align_truth/SPLIT.json when present)")
    parser.add_argument("--preview", type=int, default=8, metavar="N", help="pairs in preview.png (default 8)")
    names = ("model", "max_side", "min_side", "features", "min_inliers", "min_inlier_ratio", "max_photo_ratio",
             "dis_preset")
    for name in names:
        field = AlignConfig.model_fields[name]
        kind = field.annotation if field.annotation in (int, float) else str
        parser.add_argument(f"--{name.replace('_', '-')}", dest=f"align_{name}", type=kind, metavar=name.upper(),
                            help=f"{field.description or name} (default {field.default})")
    parser.add_argument("--force", action="store_true", help="recompute every pair (also over other settings)")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from darkseg.align.estimate import AlignConfig
    from darkseg.align.run import align_dataset
    from darkseg.data.check import config_for_root
    from darkseg.data.registry import build_dataset
    from darkseg.errors import ConfigError, DataError

    values = {k[6:]: v for k, v in vars(args).items() if k.startswith("align_") and v is not None}
    try:
        cfg = AlignConfig(**values)
    except ValidationError as err:
        first = err.errors()[0]
        raise ConfigError(f"align --{str(first['loc'][0]).replace('_', '-')}: {first['msg']}") from None
    data_cfg = config_for_root(args.name, args.root)
    dataset = build_dataset(data_cfg, args.split, ("image", "day"))
    out = args.out or args.root / "align" / args.split
    truth_path = args.truth or args.root / "align_truth" / f"{args.split}.json"
    truth = None
    if args.truth or truth_path.is_file():
        try:
            truth = json.loads(truth_path.read_text())
        except (OSError, ValueError) as err:
            raise DataError(f"{truth_path}: cannot read the true flows ({err})") from None
    summary = align_dataset(dataset, out, cfg, truth, args.preview, args.force, progress=not args.json)
    summary["out"] = str(out)
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"{args.name} {args.split}: {summary['aligned']} of {summary['pairs']} pairs aligned, "
          f"{summary['failed']} failed (excluded from training); cache {out}")
    for key, value in summary["mean"].items():
        print(f"  mean {key:22s} {value:8.3f}")
    for pair_id, reason in list(summary["failed_pairs"].items())[:10]:
        print(f"  failed {pair_id}: {reason}")
    if summary["failed"] > 10:
        print(f"  ... {summary['failed'] - 10} more in {out / 'report.json'}")
    print(f"  preview: {out / 'preview.png'}")
    return 0
