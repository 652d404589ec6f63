"""``darkseg reproduce dgkd-wlss``: the paper's Table 1 (and ablations) trained and evaluated from scratch."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "reproduce a paper's tables (dgkd-wlss) on the built-in benchmark (CPU) or the real datasets (GPU)"
ORDER = 5
ABLATION_CHOICES = ("kd-loss", "dgf2", "depth-model", "lambda", "steps")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paper", choices=["dgkd-wlss"], help="which paper's results to reproduce")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides applied to every run")
    parser.add_argument("--suite", default="scenes", choices=["scenes", "voc", "lis", "voc-lis"],
                        help="scenes = built-in benchmark on CPU; voc/lis/voc-lis = real datasets (GPU recipes)")
    parser.add_argument("--quick", action="store_true", help="short schedules, one seed (≲ 20 min on 2 CPU cores)")
    parser.add_argument("--seeds", help="comma-separated seeds, e.g. 0,1,2 (default: 0,1,2; --quick: 0)")
    parser.add_argument("--ablation", action="append", default=[], choices=ABLATION_CHOICES,
                        help="also run an ablation table (repeatable): kd-loss = Table 2(a), dgf2 = 2(b), "
                             "depth-model = 2(c), lambda = Table 8, steps = Table 9")
    parser.add_argument("--out", type=Path, help="output folder (default: runs/reproduce-<suite>[-quick])")
    parser.add_argument("--configs", type=Path, help="configs folder (default: ./configs)")
    parser.add_argument("--data-root", help="dataset root of the real-data suites (sets data.root)")
    parser.add_argument("--eval-data-root", help="evaluation dataset root of voc-lis (the LIS folder)")
    parser.add_argument("--split", help="evaluation split (default: each config's eval.split)")


def _configs_dir(arg: Path | None) -> Path:
    import darkseg

    if arg is not None:
        return arg
    local = Path("configs")
    if (local / "dgkd_wlss").is_dir():
        return local
    return Path(darkseg.__file__).resolve().parents[2] / "configs"


def run(args: argparse.Namespace) -> int:
    import datetime
    import shlex
    import sys
    import time

    from darkseg.engine.distributed import is_main_process
    from darkseg.errors import ConfigError
    from darkseg.reproduce.depth_maps import ensure_depth_maps
    from darkseg.reproduce.report import write_report
    from darkseg.reproduce.runner import Plan, run_plan
    from darkseg.reproduce.suites import SUITES

    suite = SUITES[args.suite]
    overrides = list(args.overrides)
    if suite.needs_data_root and not args.data_root:
        raise ConfigError(f"--suite {args.suite} needs --data-root (the dataset folder); see the README")
    if args.data_root:
        overrides.append(f"data.root={args.data_root}")
    if args.eval_data_root:
        overrides.append(f"eval.data.root={args.eval_data_root}")
    try:
        seeds = tuple(int(s) for s in args.seeds.split(",")) if args.seeds else ((0,) if args.quick else
                                                                                 suite.default_seeds)
    except ValueError:
        raise ConfigError(f"--seeds {args.seeds!r}: expected comma-separated integers, e.g. 0,1,2") from None
    out = args.out or Path(f"runs/reproduce-{args.suite}{'-quick' if args.quick else ''}")
    plan = Plan(suite, _configs_dir(args.configs), out, seeds, args.quick, overrides, args.split)
    command = "darkseg " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    t0 = time.perf_counter()
    table1 = run_plan(plan, suite.columns)
    labels = {r.key: r.label for r in suite.columns}
    ablations = {}
    for name in dict.fromkeys(args.ablation):
        title, rows = suite.ablation(name)
        if name == "depth-model":
            ensure_depth_maps(plan, rows)
        res = run_plan(plan, (suite.columns[1],) + rows)
        res.pop("teacher")
        ablations[name] = (title, res)
        labels.update({r.key: r.label for r in rows})
    if not is_main_process():
        return 0
    date = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    results = write_report(plan, table1, ablations, labels, command, date, time.perf_counter() - t0)
    print()
    print(f"{'column':<22} {'mIoU':>14} {'PixAcc':>14}")
    for key, s in results["columns"].items():
        print(f"{labels[key]:<22} {s['miou']:7.2f} ± {s['miou_std']:4.2f} {s['pixacc']:7.2f} ± {s['pixacc_std']:4.2f}")
    print(f"gap recovered: {results['gap_recovered']:.2f} (paper, VOC: 0.84)")
    print(f"report: {out / 'report.md'}")
    return 0
