"""``darkseg pseudo``: pseudo masks of a trained (weakly supervised) model for a split, as a VOC-layout mask folder.

Each image is segmented with the config's multi-scale × flip inference (``eval.inference``), foreground classes
absent from the image labels zeroed (``--class-filter gt``, the WSSS convention), optionally refined by a dense
CRF, and written as ``OUT/<id>.png`` (palette PNG, class ids, 255 = ignore) atomically. Existing masks are kept, so
an interrupted run resumes. The pseudo-mask mIoU against the split's ground truth is printed when masks exist.
Train on the folder with ``data.train_mask_dir=OUT`` (and e.g. ``method.name=supervised``). The labelling itself is
``darkseg.engine.pseudo.write_pseudo_masks`` (shared with the two-stage columns of ``darkseg reproduce``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from darkseg.commands._common import add_config_arguments, load

HELP = "pseudo masks of a trained model for a split: palette PNG folder (VOC layout), resumable, with their mIoU"
ORDER = 35


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--weights", type=Path,
                        help="exported weights or checkpoint dir (default: <run>/model_final.safetensors)")
    parser.add_argument("--split", default="train", help="split of data.dataset to label (default train)")
    parser.add_argument("--out", "-o", type=Path, required=True, help="output folder of <id>.png masks")
    parser.add_argument("--class-filter", choices=("gt", "pred", "none"), default="gt",
                        help="zero classes absent from the image labels (gt, default), by predicted score, or none")
    parser.add_argument("--crf", action="store_true",
                        help="refine with a dense CRF (eval.inference.crf settings, or the defaults if unset)")


def run(args: argparse.Namespace) -> int:
    from darkseg.engine.pseudo import write_pseudo_masks

    cfg = load(args)
    if cfg is None:
        return 0
    written, kept, metrics = write_pseudo_masks(cfg, args.weights, args.split, args.out, args.class_filter, args.crf)
    print(f"pseudo masks of {written + kept} {args.split} images in {args.out} ({written} written, {kept} kept)")
    if metrics is not None:
        print(f"pseudo-mask mIoU against the {args.split} ground truth: {metrics.miou:.2f} "
              f"(PixAcc {metrics.pixacc:.2f})")
    return 0
