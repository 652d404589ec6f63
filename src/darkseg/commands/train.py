"""``darkseg train``: train a config; checkpoints, logs and the exported model go to the run folder."""

from __future__ import annotations

import argparse
import os
import re
import shlex
import signal
from pathlib import Path

from darkseg.commands._common import add_config_arguments, load

HELP = "train a model from a config (resumable; Ctrl-C writes a checkpoint)"
ORDER = 10
EPILOG = (
    "An existing run folder is never overwritten: continue it with --resume or start it again with --overwrite. "
    "Exit codes: 0 done (or stopped by --stop-at), 1 error, 2 usage error, 130 Ctrl-C, 143 SIGTERM; a first Ctrl-C "
    "or SIGTERM finishes the iteration and writes a checkpoint, a second Ctrl-C exits without waiting. "
    "train.threads sets torch CPU threads per process (default auto = min(4, available CPUs / processes on the "
    "node)); on a busy or shared machine set it to the number of free cores: oversubscribed threads made CPU "
    "training 22x slower in one field test."
)
_OVERRIDE = re.compile(r"^[A-Za-z_][\w.]*=")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.epilog = EPILOG
    parser.add_argument("--resume", nargs="?", const=True, default=False, metavar="CHECKPOINT",
                        help="continue the run from its newest complete checkpoint, or from CHECKPOINT (a directory "
                             "under <run>/checkpoints; newer checkpoints are moved to checkpoints/superseded/)")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete the run files of an existing run folder (config, logs, checkpoints, models) "
                             "and train again; other files in the folder are kept")
    parser.add_argument("--stop-at", type=int, metavar="N",
                        help="stop after iteration N with a checkpoint (continue later with --resume)")


def _continue_command(args: argparse.Namespace) -> str:
    """The command line that continues this run (with the torchrun prefix under torchrun)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
        nodes = f" --nnodes {world // per_node}" if world != per_node else ""
        prefix = ["torchrun"] + shlex.split(f"--nproc_per_node {per_node}{nodes}") + ["-m", "darkseg.cli"]
    else:
        prefix = ["darkseg"]
    return shlex.join([*prefix, "train", args.config, *args.overrides, "--resume"])


def run(args: argparse.Namespace) -> int:
    if isinstance(args.resume, str) and _OVERRIDE.match(args.resume) and not Path(args.resume).exists():
        args.overrides.append(args.resume)  # `--resume key=value`: an override, not a checkpoint
        args.resume = True
    cfg = load(args)
    if cfg is None:
        return 0
    from darkseg.engine.distributed import is_main_process
    from darkseg.engine.runner import train

    resume = Path(args.resume) if isinstance(args.resume, str) else args.resume
    result = train(cfg, resume=resume, stop_at=args.stop_at, overwrite=args.overwrite)
    run_dir = cfg.run_dir()
    code = 128 + result.interrupted if result.interrupted else 0
    if not is_main_process():
        return code
    if not result.completed:
        why = f"interrupted ({signal.Signals(result.interrupted).name})" if result.interrupted else "stopped"
        print(f"{why} at iteration {result.iteration}, checkpoint written; continue with: {_continue_command(args)}")
        return code
    best = result.best or {}
    print(f"done: {run_dir}/model_final.safetensors (val mIoU {best.get('miou', float('nan')):.2f} "
          f"best at iteration {best.get('iteration', '-')})")
    return 0
