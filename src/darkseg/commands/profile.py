"""``darkseg profile``: parameters and GMAC of a config, for the deployed model and the training graph."""

from __future__ import annotations

import argparse
import json

from darkseg.commands._common import add_config_arguments, load

HELP = "parameters and GMAC of a config's deployed model and training graph at an input size"
ORDER = 40


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--size", type=int, default=321, help="square input size (default 321)")
    parser.add_argument("--json", action="store_true",
                        help='print {"params", "gmac", "deploy_params", "deploy_gmac"} as JSON')


def run(args: argparse.Namespace) -> int:
    cfg = load(args)
    if cfg is None:
        return 0
    from darkseg.engine.profile import profile

    report = profile(cfg, args.size)
    if args.json:
        print(json.dumps(report.to_json()))
        return 0
    print(f"input 1x3x{args.size}x{args.size}; GMAC = FlopCounterMode FLOPs / 2")
    print(f"deployed model : {report.deploy_params:>13,d} params  {report.deploy_gmac:9.2f} GMAC")
    print(f"training graph : {report.params:>13,d} params  {report.gmac:9.2f} GMAC (forward of one step)")
    for name, (n, g) in report.nets.items():
        print(f"  {name:<13}: {n:>13,d} params  {g:9.2f} GMAC")
    print(f"training-only  : {report.params - report.deploy_params:>13,d} params  "
          f"{report.gmac - report.deploy_gmac:9.2f} GMAC")
    return 0
