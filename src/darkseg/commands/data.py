"""``darkseg data``: generate the built-in datasets (``scenes``: the procedural low-light benchmark)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

HELP = "generate built-in datasets (scenes: the procedural low-light benchmark)"
ORDER = 40

# option -> ScenesConfig field; defaults stay in ScenesConfig
_OPTIONS = {
    "--size": ("size", int, "image side in pixels (default 96)"),
    "--n-train": ("n_train", int, "training images (default 2000)"),
    "--n-val": ("n_val", int, "validation images (default 300)"),
    "--n-test": ("n_test", int, "test images (default 300)"),
    "--n-pairs-train": ("n_pairs_train", int, "day/night training pairs (default 500)"),
    "--n-pairs-val": ("n_pairs_val", int, "day/night validation pairs (default 100)"),
    "--max-shift": ("max_shift", int, "largest day/night camera shift in pixels (default 4)"),
    "--seed": ("seed", int, "generator seed (default 0)"),
    "--preset": ("lowlight_preset", str, "darkseg.lowlight preset for the dark and night images: maet (default), "
                 "brooks, no-noise"),
    "--dark-binning": ("dark_binning", int, "run the low-light pipeline at this many times the resolution, then "
                       "area-average: noise std / binning (default 2; 1 = no binning)"),
    "--workers": ("workers", int, "processes (default 0 = one per CPU core)"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    p = sub.add_parser(
        "scenes",
        help="write the procedural low-light benchmark in the VOC layout",
        description="Write the procedural low-light benchmark (normal, dark, depth, masks, day/night pairs) to OUT "
        "in the VOC layout. A complete cache with the same settings is reused.",
    )
    p.add_argument("out", metavar="OUT", type=Path, help="output folder (new, empty, or an earlier scenes cache)")
    for flag, (field, kind, text) in _OPTIONS.items():
        metavar = "PRESET" if kind is str else "N"
        p.add_argument(flag, dest=field, type=kind, default=None, metavar=metavar, help=text)
    p.add_argument("--no-ignore-edges", dest="ignore_edges", action="store_false", default=None,
                   help="label mixed edge pixels instead of marking them 255")
    p.add_argument("--force", action="store_true", help="regenerate even over a cache made with other settings")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from darkseg.data.scenes import ScenesConfig, ensure_scenes, generate_scenes, read_meta
    from darkseg.errors import ConfigError

    fields = [field for field, _, _ in _OPTIONS.values()] + ["ignore_edges"]
    try:
        cfg = ScenesConfig(**{f: getattr(args, f) for f in fields if getattr(args, f) is not None})
    except ValidationError as err:
        first = err.errors()[0]
        flag = {field: flag for flag, (field, _, _) in _OPTIONS.items()}.get(str(first["loc"][0]), first["loc"][0])
        raise ConfigError(f"scenes {flag}: {first['msg']}") from None
    start = time.perf_counter()
    before = read_meta(args.out)
    if args.force:
        generate_scenes(args.out, cfg, progress=not args.quiet)
    else:
        ensure_scenes(args.out, cfg, progress=not args.quiet)
    meta = read_meta(args.out)
    assert meta is not None
    if before == meta:
        print(f"{args.out}: scenes cache is up to date")
        return 0
    stats = meta["stats"]
    total = sum(s["images"] for s in stats.values())
    print(f"wrote {total} images to {args.out} in {time.perf_counter() - start:.1f} s")
    for view, s in sorted(stats.items(), key=lambda kv: (kv[0].startswith("pairs"), kv[0] != "train", kv[0])):
        freq = " ".join(f"{c}={v:.2f}" for c, v in s["image_freq"].items())
        print(f"  {view:18s} {s['images']:5d} images; images with class: {freq}")
    return 0
