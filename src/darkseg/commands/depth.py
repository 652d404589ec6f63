"""``darkseg depth SRC DST``: relative inverse depth maps (16-bit PNG) for a folder or a VOC-layout dataset."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

HELP = "estimate depth priors (16-bit PNG, near = 65535) for a folder or a VOC-layout dataset"
ORDER = 60
MODELS = ("depth-anything-small", "depth-anything-base", "depth-anything-large", "zoedepth", "dpt-midas")

log = logging.getLogger(__name__)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", type=Path, metavar="SRC", help="folder of images, or a VOC root (has JPEGImages/)")
    parser.add_argument("dst", type=Path, metavar="DST", help="output folder (ids and relative paths are kept)")
    parser.add_argument("--model", required=True, choices=MODELS, help="depth model family")
    parser.add_argument(
        "--weights",
        required=True,
        type=Path,
        metavar="DIR",
        help="local Hugging Face model folder (config.json, preprocessor_config.json, weights), e.g. a download of "
        "LiheYoung/depth-anything-small-hf, Intel/zoedepth-nyu-kitti or Intel/dpt-hybrid-midas",
    )
    parser.add_argument(
        "--images",
        metavar="NAME",
        help="sub-folder of SRC to read (default for a VOC root: 'dark', the low-light images, as in the paper)",
    )
    parser.add_argument(
        "--batch-size", type=_positive, default=4, metavar="N", help="images per forward pass (default 4)"
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda when available, else cpu")
    parser.add_argument("--npy", action="store_true", help="also write <id>.npy (float32 in [0, 1])")
    parser.add_argument(
        "--workers", type=_positive, default=2, metavar="N", help="threads reading and writing files (default 2)"
    )
    parser.add_argument(
        "--suffix", default="", help="appended to each output name, e.g. '_depth' for <id>_depth.png (default none)"
    )


def run(args: argparse.Namespace) -> int:
    """Depth for every image not done yet; exit 1 if some images could not be read (they are listed)."""
    from darkseg.depth import DepthEstimator, estimate_tree

    estimator = DepthEstimator(args.model, args.weights, args.device)
    summary = estimate_tree(
        args.src,
        args.dst,
        estimator,
        images=args.images,
        batch_size=args.batch_size,
        npy=args.npy,
        workers=args.workers,
        suffix=args.suffix,
    )
    log.info(
        "depth: %d written, %d already done, %d unreadable -> %s",
        summary.written,
        summary.skipped,
        len(summary.failed),
        args.dst,
    )
    return 1 if summary.failed else 0
