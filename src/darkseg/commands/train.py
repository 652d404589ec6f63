"""``darkseg train``: train a config; checkpoints, logs and the exported model go to the run folder."""

from __future__ import annotations

import argparse

from darkseg.commands._common import add_config_arguments, load

HELP = "train a model from a config (resumable; Ctrl-C writes a checkpoint)"
ORDER = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    parser.add_argument("--stop-at", type=int, metavar="N",
                        help="stop after iteration N with a checkpoint (continue later with --resume)")


def run(args: argparse.Namespace) -> int:
    cfg = load(args)
    if cfg is None:
        return 0
    from darkseg.engine.distributed import is_main_process
    from darkseg.engine.runner import train

    result = train(cfg, resume=args.resume, stop_at=args.stop_at)
    run_dir = cfg.run_dir()
    if not is_main_process():
        return 0
    if not result.completed:
        print(f"stopped at iteration {result.iteration}; continue with: darkseg train {args.config} "
              f"{' '.join(args.overrides)} --resume".replace("  ", " "))
        return 0
    best = result.best or {}
    print(f"done: {run_dir}/model_final.safetensors (val mIoU {best.get('miou', float('nan')):.2f} "
          f"best at iteration {best.get('iteration', '-')})")
    return 0
