"""``darkseg synth``: physically based low-light versions of an image folder or VOC tree, or a preview grid."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from darkseg.lowlight import LowLightConfig

HELP = "darken images with the physically based low-light pipeline (unprocess, darken, noise, re-process)"
ORDER = 50

_EPILOG = """\
examples:
  darkseg synth VOC2012 VOC2012_dark --preset maet --seed 0 --workers 2
  darkseg synth photos photos_dark --set gamma_range=[2,3] --set quantisation=round
  darkseg synth --preview photo.jpg preview.png --seed 3

SRC is a folder (every .jpg/.jpeg/.png/.bmp/.tif/.tiff below it: point it at the images, e.g. Cityscapes'
leftImg8bit, not at label folders) or a VOC tree (only images under JPEGImages/ folders). Outputs keep relative
path, size, format, bit depth and alpha (JPEG quality 95); grey inputs become RGB; EXIF rotation is not applied.
Existing outputs are skipped (resume); DST/lowlight_config.json holds the seed and config, and
DST/lowlight_params.jsonl the sampled parameters of every image. Image ids (path below JPEGImages/ or SRC, without
suffix) and --seed fix every draw, so the same command gives the same bytes.

--set KEY=VALUE overrides one LowLightConfig field (YAML value), e.g. gamma_range=[2,3], darkness_mean=0.2,
noise=false, quantisation=round|uniform|none, round_levels=255, quant_betas=[12,14,16], ccm=choice|mix,
mosaic=true, shot_range=[1e-4,0.012], gain_mean, gain_std, red_range, blue_range, darkness_std,
darkness_range, read_slope, read_intercept, read_std.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _EPILOG
    parser.add_argument("src", nargs="?", type=Path, help="folder or VOC tree of normal-light images")
    parser.add_argument("dst", nargs="?", type=Path, help="output folder (outside SRC), created if needed")
    parser.add_argument("--preset", default="maet", choices=["maet", "brooks", "no-noise"],
                        help="parameter set (default: maet)")
    parser.add_argument("--seed", type=int, default=0, help="base seed; each image is seeded from (seed, id)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default: 1)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field (repeatable), see below")
    parser.add_argument("--preview", nargs=2, type=Path, metavar=("IMG", "OUT.png"),
                        help="write a 2x2 grid (original, dark, brightened dark, |noise|) instead of converting")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def build_config(preset: str, overrides: list[str]) -> LowLightConfig:
    """LowLightConfig from a preset and KEY=VALUE overrides; bad keys or values raise ConfigError."""
    import yaml
    from pydantic import ValidationError

    from darkseg.errors import ConfigError
    from darkseg.lowlight import LowLightConfig

    fields = sorted(k for k in LowLightConfig.model_fields if k != "preset")
    values: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or key.strip() not in fields:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE with KEY one of {', '.join(fields)}")
        try:
            values[key.strip()] = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ConfigError(f"--set {item!r}: value is not valid YAML") from None
    try:
        return LowLightConfig.model_validate({"preset": preset, **values})
    except ValidationError as err:
        first = err.errors()[0]
        msg = first["msg"].removeprefix("Value error, ")
        if not first["loc"]:
            raise ConfigError(f"--set: {msg}") from None
        key = str(first["loc"][0])
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"--set {where} (got {values.get(key)!r}): {msg}") from None


def run(args: argparse.Namespace) -> int:
    import json

    from darkseg.errors import ConfigError
    from darkseg.lowlight.preview import write_preview
    from darkseg.lowlight.tree import synthesize_tree

    cfg = build_config(args.preset, args.overrides)
    if args.preview:
        if args.src or args.dst:
            raise ConfigError("--preview IMG OUT.png takes no SRC/DST; run the conversion separately")
        image, out = args.preview
        params = write_preview(image, out, cfg, args.seed)
        print(f"wrote {out} ({image}, preset {cfg.preset}, seed {args.seed}): {json.dumps(params)}")
        return 0
    if args.src is None or args.dst is None:
        raise ConfigError("need SRC and DST (or --preview IMG OUT.png); see 'darkseg synth --help'")
    report = synthesize_tree(args.src, args.dst, cfg, args.seed, args.workers, progress=not args.no_progress)
    print(f"{len(report.written)} written, {len(report.existing)} already present, "
          f"{len(report.failed)} unreadable or unsupported skipped -> {args.dst}")
    for note, count in sorted(Counter(report.converted.values()).items()):
        print(f"  {count} image(s): {note}")
    return 0
