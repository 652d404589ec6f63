"""Arguments shared by the commands that take an experiment config."""

from __future__ import annotations

import argparse


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="experiment config YAML (e.g. configs/dgkd_wlss/scenes_teacher.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config overrides, e.g. train.iterations=200 data.batch_size=8")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def load(args: argparse.Namespace):  # noqa: ANN201 - returns ExperimentConfig (imported lazily)
    """The validated config; ``None`` after printing it when ``--print-config`` was given."""
    from darkseg.config import load_config

    cfg = load_config(args.config, args.overrides)
    if args.print_config:
        print(cfg.to_yaml(), end="")
        return None
    return cfg
