"""``darkseg reproduce <paper>``: a paper's main table (and ablations) trained and evaluated from scratch."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = ("reproduce a paper's tables (dgkd-wlss, plda, asdt, dania, ccdistill) on the built-in benchmark (CPU) or real "
        "datasets (GPU)")
ORDER = 5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from darkseg.reproduce.papers import PAPERS

    suites = sorted({s for p in PAPERS.values() for s in p.suites})
    ablations = {p.name: {a: t.title for s in p.suites.values() for a, t in s.ablations.items()}
                 for p in PAPERS.values()}
    parser.add_argument("paper", choices=sorted(PAPERS), help="which paper's results to reproduce")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides applied to every run")
    parser.add_argument("--suite", default="scenes", choices=suites,
                        help="scenes = built-in benchmark on CPU; voc/lis/voc-lis = real datasets (GPU recipes)")
    parser.add_argument("--quick", action="store_true",
                        help="the suite's quick seeds, with its quick overrides if it has any (dgkd-wlss, plda and "
                             "asdt scenes: shorter schedules on seeds 0 and 1, each under 20 min on 2 CPU cores; "
                             "their numbers are not the full suite's, so give the full suite another --out)")
    parser.add_argument("--seeds", help="comma-separated seeds, e.g. 0,1,2,3,4 (default: the suite's)")
    names = sorted({a for tables in ablations.values() for a in tables})
    parser.add_argument("--ablation", action="append", default=[], choices=names,
                        help="also run an ablation table (repeatable): " + "; ".join(
                            f"{p}: " + ", ".join(f"{a} = {t.split(':')[0]}" for a, t in tables.items())
                            for p, tables in ablations.items()))
    two_stage = [f"{p.name} {s.name}" for p in PAPERS.values() for s in p.suites.values() if "two-stage" in s.ablations]
    parser.add_argument("--two-stage", action="store_true",
                        help="also the two-stage table (= --ablation two-stage): a segmenter retrained on the pseudo "
                             f"masks of the method's model; declared for: {', '.join(two_stage)}")
    parser.add_argument("--out", type=Path, help="output folder (default: runs/reproduce-<paper>-<suite>[-quick])")
    parser.add_argument("--configs", type=Path, help="configs folder (default: ./configs)")
    parser.add_argument("--data-root", help="dataset root of the real-data suites (sets data.root)")
    parser.add_argument("--eval-data-root", help="evaluation dataset root of voc-lis (the LIS folder)")
    parser.add_argument("--split", help="evaluation split (default: each config's eval.split)")
    parser.add_argument("--jobs", default="auto",
                        help="train the suite's runs in this many processes at once (they share out the runs), "
                             "each with train.threads = CPUs / jobs "
                             "(unless set); auto (default): one per seed up to the CPU count without CUDA, 1 with "
                             "CUDA. Per-seed numbers depend on the thread count")
    parser.add_argument("--runs-only", action="store_true", help=argparse.SUPPRESS)  # a --jobs process: no report
    parser.add_argument("--claims", type=Path, help=argparse.SUPPRESS)  # a --jobs process: where runs are claimed


def _configs_dir(arg: Path | None) -> Path:
    import darkseg

    if arg is not None:
        return arg
    local = Path("configs")
    if (local / "dgkd_wlss").is_dir():
        return local
    return Path(darkseg.__file__).resolve().parents[2] / "configs"


def _print_rows(title: str, rows: dict[str, dict], labels: dict[str, str], baseline: str | None) -> None:
    """One table of the summary on the console: mean ± std and the paired difference to the table's baseline (or
    to the row's own, named)."""
    from darkseg.reproduce.report import own_baseline

    width = max(22, *(len(labels[key]) for key in rows))
    print(f"\n{title}")
    print(f"{'column':<{width}} {'mIoU':>14} {'PixAcc':>14}  Δ mIoU vs baseline [95% CI]")
    for key, s in rows.items():
        d = s.get("diff_vs_baseline")
        ci = "" if d is None else f"  {d['mean']:+6.2f} " + (
            "[no interval: 1 seed]" if d["ci95"] is None else f"[{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}]")
        if d is not None:
            ci += own_baseline(s, labels, baseline)
        print(f"{labels[key]:<{width}} {s['miou']:7.2f} ± {s['miou_std']:4.2f} {s['pixacc']:7.2f} ± "
              f"{s['pixacc_std']:4.2f}" + ci)


def run(args: argparse.Namespace) -> int:
    import datetime
    import shlex
    import sys
    import time

    from darkseg.engine.distributed import is_main_process
    from darkseg.errors import ConfigError
    from darkseg.reproduce.papers import PAPERS
    from darkseg.reproduce.report import write_report
    from darkseg.reproduce.runner import Plan, run_claimed, run_plan

    paper = PAPERS[args.paper]
    if args.suite not in paper.suites:
        raise ConfigError(f"--suite {args.suite}: {paper.name} has the suites {', '.join(paper.suites)}")
    suite = paper.suites[args.suite]
    if args.two_stage:
        if "two-stage" not in suite.ablations:
            have = [n for n, s in paper.suites.items() if "two-stage" in s.ablations]
            raise ConfigError(f"--two-stage: {paper.name} --suite {suite.name} has no two-stage table; suites with "
                              f"one: {', '.join(have) or 'none'}")
        args.ablation.append("two-stage")
    unknown = [a for a in args.ablation if a not in suite.ablations]
    if unknown:
        raise ConfigError(f"--ablation {unknown[0]}: {paper.name} --suite {suite.name} has the ablations "
                          f"{', '.join(suite.ablations) or 'none'}")
    overrides = list(args.overrides)
    if suite.needs_data_root and not args.data_root:
        raise ConfigError(f"--suite {args.suite} needs --data-root (the dataset folder); see the README")
    if args.data_root:
        overrides.append(f"data.root={args.data_root}")
    if args.eval_data_root:
        overrides.append(f"eval.data.root={args.eval_data_root}")
    try:
        seeds = tuple(int(s) for s in args.seeds.split(",")) if args.seeds else (
            suite.quick_seeds if args.quick else suite.default_seeds)
    except ValueError:
        raise ConfigError(f"--seeds {args.seeds!r}: expected comma-separated integers, e.g. 0,1,2") from None
    from darkseg.reproduce.jobs import resolve_jobs

    jobs = resolve_jobs(args.jobs, len(seeds))
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds {args.seeds}: a seed is repeated; paired statistics need distinct seeds")
    out = args.out or Path(f"runs/reproduce-{paper.name}-{args.suite}{'-quick' if args.quick else ''}")
    plan = Plan(suite, _configs_dir(args.configs), out, seeds, args.quick, overrides, args.split)
    command = "darkseg " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    t0 = time.perf_counter()
    tables = [suite.main, *(suite.ablations[name] for name in dict.fromkeys(args.ablation))]
    keys = tuple(dict.fromkeys(c.key for t in tables for c in t.columns))
    if suite.prepare is not None:
        from darkseg.engine.distributed import barrier

        if is_main_process():
            suite.prepare(plan, keys)
        barrier()
    for table in tables:  # inputs a table needs (e.g. depth maps) are checked before any training
        if table.check is not None:
            table.check(plan, table)
    if args.claims is not None:  # a --jobs process: its share of the runs, then the calling process reports
        run_claimed(plan, keys, args.claims)
        return 0
    if jobs > 1:
        from darkseg.reproduce.jobs import generate_data, run_jobs

        generate_data(plan, keys)
        run_jobs(args, out, seeds, jobs)  # then every run below is reused
    main = run_plan(plan, tuple(c.key for c in suite.main.columns))
    labels = {k: c.label for k, c in suite.columns().items()}
    ablations = {}
    for name in dict.fromkeys(args.ablation):
        table = suite.ablations[name]
        res = run_plan(plan, tuple(c.key for c in table.columns))
        ablations[name] = {c.key: res[c.key] for c in table.columns}
    if args.runs_only or not is_main_process():
        return 0
    date = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    results = write_report(plan, paper, main, ablations, labels, command, date, time.perf_counter() - t0)
    _print_rows(suite.main.title, results["columns"], labels, suite.main.baseline)
    for name, ablation in results["ablations"].items():
        _print_rows(ablation["title"], ablation["rows"], labels, suite.ablations[name].baseline)
    if "gap_recovered" in results:
        note = f" ({suite.main.gap_note})" if suite.main.gap_note else ""
        print(f"gap recovered: {results['gap_recovered']:.2f}{note}")
    if len(seeds) < 2:
        print("one seed: no spread and no intervals; the differences above are a single draw (see report.md)")
    print(f"report: {out / 'report.md'}")
    return 0
