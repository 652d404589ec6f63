"""``darkseg data``: generate the built-in benchmarks (``scenes``, ``scenes_daynight``), convert COCO 2014 and
COCO-Stuff 10K into VOC-layout trees, check dataset trees and write ``cls_labels.npy`` from masks."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

HELP = (
    "generate the built-in benchmarks (scenes, scenes_daynight), convert COCO 2014 / COCO-Stuff 10K to VOC-layout "
    "trees (coco, cocostuff10k), check a dataset tree (check) or write cls_labels.npy from masks (cls-labels)"
)
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
    _add_daynight(sub)
    _add_converters(sub)
    _add_check(sub)
    _add_cls_labels(sub)


def _add_daynight(sub: argparse._SubParsersAction) -> None:
    from darkseg.data.scenes_daynight import DayNightConfig

    p = sub.add_parser(
        "scenes_daynight",
        help="write the procedural day→night adaptation benchmark (a folder dataset)",
        description="Write the day→night benchmark to OUT: labelled day images of a source city (train, val), "
        "night images of a target city paired with day images of the same places (night_train, unlabelled in "
        "use; night_val and night_test labelled), and the true day/night camera maps. A complete cache with the "
        "same settings is reused.",
    )
    p.add_argument("out", metavar="OUT", type=Path, help="output folder (new, empty, or an earlier cache)")
    for name, field in DayNightConfig.model_fields.items():
        if field.annotation in (int, float):
            p.add_argument(f"--{name.replace('_', '-')}", dest=f"dn_{name}", type=field.annotation, metavar="N",
                           help=f"{field.description or name} (default {field.default})")
    p.add_argument("--force", action="store_true", help="regenerate even over a cache made with other settings")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_converters(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "coco",
        help="convert MS COCO 2014 (80 classes) into a VOC-layout tree read by data.dataset: coco",
        description="Read ROOT/annotations/instances_{train,val}2014.json and ROOT/{train,val}2014/*.jpg; write OUT/"
        "JPEGImages/ (relative symlinks to the originals), OUT/SegmentationClassAug/ (palette masks: classes 1..80 in "
        "COCO category-id order, crowd regions 255, smaller instances on top) and OUT/ImageSets/Segmentation/"
        "{train,val}.txt (images with at least one annotation). Inputs are never written; a rerun resumes.",
    )
    p.add_argument("root", metavar="ROOT", type=Path, help="COCO 2014 folder (annotations/, train2014/, val2014/)")
    p.add_argument("--out", type=Path, required=True, help="output folder (new, empty, or an earlier conversion)")
    p.add_argument("--split", action="append", choices=["train", "val"], metavar="S",
                   help="train or val; repeat for both (default both)")
    p.add_argument("--keep-empty", action="store_true", help="also list images without any annotation")
    p = sub.add_parser(
        "cocostuff10k",
        help="convert COCO-Stuff 10K v1.1 to its 21 VOC classes, a VOC-layout tree read by "
        "data.dataset: cocostuff10k_voc",
        description="Read ROOT/imageLists/{train,test}.txt, ROOT/images/<id>.jpg and ROOT/annotations/<id>.mat; write "
        "OUT/JPEGImages/ (relative symlinks), OUT/SegmentationClassAug/ (things of the 20 VOC categories at their VOC "
        "ids, other labelled categories 0, unlabeled 255) and the lists train (train.txt images with a VOC-class "
        "pixel), train_all and test. Inputs are never written; a rerun resumes.",
    )
    p.add_argument("root", metavar="ROOT", type=Path, help="COCO-Stuff 10K v1.1 folder (images/, annotations/, "
                   "imageLists/)")
    p.add_argument("--out", type=Path, required=True, help="output folder (new, empty, or an earlier conversion)")
    for p in sub.choices["coco"], sub.choices["cocostuff10k"]:
        p.add_argument("--workers", type=int, default=0, metavar="N", help="processes for the masks (default 0: this "
                       "one)")
        p.add_argument("--quiet", action="store_true", help="no progress bar")


def _run_converter(args: argparse.Namespace) -> int:
    from darkseg.data import coco, cocostuff

    start = time.perf_counter()
    if args.dataset == "coco":
        counts = coco.convert(args.root, args.out, tuple(dict.fromkeys(args.split or coco.SPLITS)), args.keep_empty,
                              args.workers, not args.quiet)
    else:
        counts = cocostuff.convert(args.root, args.out, args.workers, not args.quiet)
    print(f"wrote the {args.dataset} tree {args.out} in {time.perf_counter() - start:.1f} s: "
          + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def _add_check(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check",
        help="validate a dataset tree: files present and readable, label ids, sizes, pairs; class pixel counts",
        description="Read every file of a split of dataset NAME under ROOT once: listed files present and readable, "
        "label values within the dataset's table, image/label/day sizes equal, pairs complete. Prints the number "
        "of images and the labelled pixels per class (255 not counted); exits 1 naming the first bad file.",
    )
    p.add_argument("name", metavar="NAME", help="registered dataset (cityscapes, dark_zurich, voc, folder, ...)")
    p.add_argument("root", metavar="ROOT", type=Path, help="dataset root folder")
    p.add_argument("--split", default="train", help="split to check (default train)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _add_cls_labels(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cls-labels",
        help="write the image-level labels of a VOC-layout tree (cls_labels.npy) from its masks",
        description="Write cls_labels.npy (np.save of a dict id -> multi-hot vector of the 20 foreground classes, "
        "as data.cls_labels reads it) from the masks of the listed splits. The file is optional: without it "
        "the labels come from the masks at load time. An existing file is kept unless --overwrite is given.",
    )
    p.add_argument("root", metavar="ROOT", type=Path, help="VOC-layout root (ImageSets/Segmentation/, masks)")
    p.add_argument("--split", action="append", metavar="S",
                   help="split to read (ImageSets/Segmentation/S.txt); repeat for several (default train)")
    p.add_argument("--mask-dir", default="SegmentationClassAug", metavar="DIR",
                   help="mask folder under ROOT (default SegmentationClassAug; for val and test the reader "
                   "uses SegmentationClass when the tree has it)")
    p.add_argument("--out", type=Path, metavar="FILE", help="output file (default ROOT/cls_labels.npy)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def run(args: argparse.Namespace) -> int:
    if args.dataset == "check":
        return _run_check(args)
    if args.dataset == "cls-labels":
        return _run_cls_labels(args)
    if args.dataset == "scenes_daynight":
        return _run_daynight(args)
    if args.dataset in ("coco", "cocostuff10k"):
        return _run_converter(args)
    from pydantic import ValidationError

    from darkseg.data.scenes import ScenesConfig, ensure_scenes, read_meta
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
    ensure_scenes(args.out, cfg, progress=not args.quiet, force=args.force)
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


def _run_check(args: argparse.Namespace) -> int:
    import json

    from darkseg.data.check import check_split, config_for_root
    from darkseg.errors import DataError

    if not args.root.is_dir():
        raise DataError(f"{args.root}: dataset root not found")
    result = check_split(config_for_root(args.name, args.root), args.split)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{args.name} {args.split} at {args.root}: {result['images']} images, views {', '.join(result['views'])}: OK")
    pixels = result.get("class_pixels")
    if pixels:
        total = max(sum(pixels.values()), 1)
        for name, count in pixels.items():
            print(f"  {name:16s} {count:12d} px  {100 * count / total:6.2f}%")
        print(f"  {'(ignored, 255)':16s} {result['ignored_pixels']:12d} px")
    return 0


def _run_cls_labels(args: argparse.Namespace) -> int:
    from darkseg.data.voc import write_cls_labels

    out = args.out or args.root / "cls_labels.npy"
    splits = args.split or ["train"]
    n = write_cls_labels(args.root, splits, out, args.mask_dir, args.overwrite)
    print(f"wrote the image-level labels of {n} images ({', '.join(splits)}) to {out}")
    return 0


def _run_daynight(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from darkseg.data import scenes_daynight
    from darkseg.errors import ConfigError

    values = {k[3:]: v for k, v in vars(args).items() if k.startswith("dn_") and v is not None}
    try:
        cfg = scenes_daynight.DayNightConfig(**values)
    except ValidationError as err:
        first = err.errors()[0]
        raise ConfigError(f"scenes_daynight --{str(first['loc'][0]).replace('_', '-')}: {first['msg']}") from None
    start = time.perf_counter()
    before = scenes_daynight.read_meta(args.out)
    scenes_daynight.ensure(args.out, cfg, progress=not args.quiet, force=args.force)
    meta = scenes_daynight.read_meta(args.out)
    if before == meta:
        print(f"{args.out}: scenes_daynight cache is up to date")
        return 0
    print(f"wrote {sum(cfg.sizes().values())} images to {args.out} in {time.perf_counter() - start:.1f} s")
    for split, n in cfg.sizes().items():
        print(f"  {split:12s} {n:5d} images")
    return 0
