"""``darkseg pretrain``: pretrain a backbone by multi-label classification and export it for the recipes."""

from __future__ import annotations

import argparse

from darkseg.commands._common import add_config_arguments, load

HELP = "pretrain a backbone by classification (the scenes recipes' stand-in for ImageNet weights); cached"
ORDER = 12


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.epilog = (
        "Trains the config (a 'cam' classification config, e.g. configs/pretrain/scenes_pretrain_wideresnet38.yaml) "
        "into its output_dir and writes the backbone alone to <output_dir>/backbone.safetensors, the file the recipes' "
        "model.backbone.pretrained names. A finished run with the same config and images is reused; an interrupted "
        "one is resumed. darkseg reproduce runs this step itself."
    )
    parser.add_argument("--force", action="store_true",
                        help="a run made with another config: move it aside (kept) and pretrain again")


def run(args: argparse.Namespace) -> int:
    from darkseg.engine.pretrain import ensure_backbone

    cfg = load(args)
    if cfg is None:
        return 0
    done = ensure_backbone(cfg, force=args.force)
    state = f"pretrained in {done.seconds / 60:.1f} min" if done.trained else "up to date (reused)"
    print(f"{done.path}: backbone {state}; cache key {done.key}")
    return 0
