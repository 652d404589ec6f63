"""The reproduce report: results.json, report.md and figures (per-class IoU, qualitative grid, CAMs, curves)."""

from __future__ import annotations

import csv
import itertools
import json
import math
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from darkseg.data.io import VOC_PALETTE  # noqa: E402
from darkseg.data.registry import build_dataset  # noqa: E402
from darkseg.data.transforms import EvalTransform  # noqa: E402
from darkseg.engine.cam_sweep import class_maps  # noqa: E402
from darkseg.engine.inference import labels_from_probs, predict_probs  # noqa: E402
from darkseg.engine.runner import load_deployed  # noqa: E402
from darkseg.reproduce.runner import Plan, RunResult  # noqa: E402
from darkseg.reproduce.stats import mean_std, paired_difference, t_interval, t_quantile  # noqa: E402
from darkseg.reproduce.tables import Paper, Table  # noqa: E402
from darkseg.reproduce.two_stage import PSEUDO_SCORE  # noqa: E402


def summarise(results: dict[str, list[RunResult]], table: Table) -> dict[str, dict]:
    """Per column: mean ± std and per-seed values of mIoU/PixAcc, per-class IoU means, deployed params/GMAC; for
    every compared column its paired difference to its baseline (95% t interval; ``baseline`` names that column)
    and its gap recovered."""
    out = {}
    for key, runs in results.items():
        miou, miou_sd = mean_std([r.metrics["miou"] for r in runs])
        pix, pix_sd = mean_std([r.metrics["pixacc"] for r in runs])
        classes = runs[0].metrics["per_class_iou"]
        per_class = {c: statistics.fmean(r.metrics["per_class_iou"][c] for r in runs) for c in classes}
        out[key] = {
            "miou": miou, "miou_std": miou_sd, "pixacc": pix, "pixacc_std": pix_sd,
            "seeds": [r.seed for r in runs], "miou_per_seed": [r.metrics["miou"] for r in runs],
            "pixacc_per_seed": [r.metrics["pixacc"] for r in runs],
            "per_class_iou": per_class, "params": runs[0].params, "gmac": runs[0].gmac,
            "input_view": runs[0].input_view, "split": runs[0].metrics["split"],
        }
        if any("inference" in r.metrics for r in runs):  # thresholds chosen on a validation split per run
            out[key]["inference_per_seed"] = [r.metrics.get("inference") for r in runs]
        out[key].update(pseudo_mask_quality(runs))
        changes = [last_fifth_change(r.run_dir) for r in runs]
        if runs and None not in changes:
            mean, sd = mean_std(changes)
            out[key]["val_last_fifth_change"] = {"mean": mean, "std": sd, "per_seed": changes,
                                                 "ci95": t_interval(changes)}
    for key in table.compared():
        base = table.baseline_of(key)
        if key in out and base in out:
            diff = paired_difference(_by_seed(out[key]), _by_seed(out[base]))
            out[key]["diff_vs_baseline"] = {"mean": diff["mean"], "ci95": diff["ci95"]}
            out[key]["baseline"] = base
            if table.reference in out:
                out[key]["gap_recovered"] = gap_recovered(out, table, key)
                out[key]["gap_recovered_ci95"] = t_interval(_seed_gaps(out, table, key))
    return out


def pseudo_mask_quality(runs: list[RunResult]) -> dict:
    """mIoU of the pseudo masks a column exported for a two-stage column (``two_stage.PSEUDO_SCORE``: the single-stage
    model's masks of its train split against that split's ground truth), mean ± std and per seed; {} when none."""
    scores = [json.loads(p.read_text()) for p in (r.run_dir / PSEUDO_SCORE for r in runs) if p.is_file()]
    if len(scores) != len(runs) or any(s.get("miou") is None for s in scores):
        return {}
    mean, std = mean_std([s["miou"] for s in scores])
    return {"pseudo_masks": {"split": scores[0]["split"], "crf": scores[0]["crf"], "miou": mean, "miou_std": std,
                             "miou_per_seed": [s["miou"] for s in scores]}}


def _pseudo_lines(rows: list[tuple[str, dict]]) -> list[str]:
    """One line per column whose pseudo masks a two-stage column trained on: their quality on the train split."""
    lines = [f"- {label}: {q['miou']:.1f} ± {q['miou_std']:.1f} ("
             + " / ".join(f"{v:.1f}" for v in q["miou_per_seed"]) + f"), {q['split']} split"
             + (", dense CRF" if q["crf"] else "") for label, s in rows if (q := s.get("pseudo_masks"))]
    if not lines:
        return []
    return ["Pseudo masks (mIoU against the ground truth of the split they were made for; the two-stage columns train "
            "on them):", "", *lines, ""]


def _seed_gaps(summary: dict[str, dict], table: Table, column: str) -> list[float]:
    """Per-seed gap recovered (column − baseline) / (reference − baseline), over the seeds all three ran."""
    ref, base, col = (_by_seed(summary[k]) for k in (table.reference, table.baseline_of(column), column))
    seeds = sorted(set(ref) & set(base) & set(col))
    return [(col[s] - base[s]) / (ref[s] - base[s]) for s in seeds if ref[s] != base[s]]


def _by_seed(column: dict) -> dict[int, float]:
    return dict(zip(column["seeds"], column["miou_per_seed"], strict=True))


def gap_recovered(summary: dict[str, dict], table: Table, column: str) -> float:
    """(column − baseline) / (reference − baseline) on mean mIoU (0.84 for DGKD-WLSS's VOC Table 1)."""
    t, b = summary[table.reference]["miou"], summary[table.baseline_of(column)]["miou"]
    return (summary[column]["miou"] - b) / (t - b) if t != b else math.nan


def own_baseline(s: dict, labels: dict[str, str], table_baseline: str | None) -> str:
    """`` vs <label>`` when a summarised row is compared with another column than its table's baseline
    (``Table.pairs``), else ``""``."""
    base = s.get("baseline")
    return f" vs {labels.get(base, base)}" if base is not None and base != table_baseline else ""


def _diff_cell(s: dict, labels: dict[str, str], table_baseline: str | None) -> str:
    """The paired difference of a row, naming its own baseline when it is not the table's."""
    d = s.get("diff_vs_baseline")
    if d is None:
        return "–"
    against = own_baseline(s, labels, table_baseline)
    if d["ci95"] is None:
        return f"{d['mean']:+.1f}{against} (1 seed: no interval)"
    lo, hi = d["ci95"]
    verdict = "above 0" if lo > 0 else "below 0" if hi < 0 else "contains 0"
    return f"{d['mean']:+.1f} [{lo:+.1f}, {hi:+.1f}]{against} ({verdict})"


def _table(rows: list[tuple[str, dict]], labels: dict[str, str], table_baseline: str | None) -> list[str]:
    lines = ["| run | mIoU (%) | per seed mIoU | Δ mIoU vs baseline [95% CI] | PixAcc (%) | Params (M) | GMAC "
             "| evaluated on |", "|---|---|---|---|---|---|---|---|"]
    for label, s in rows:
        seeds = " / ".join(f"{v:.1f}" for v in s["miou_per_seed"])
        lines.append(
            f"| {label} | {s['miou']:.1f} ± {s['miou_std']:.1f} | {seeds} | {_diff_cell(s, labels, table_baseline)} "
            f"| {s['pixacc']:.1f} ± {s['pixacc_std']:.1f} | {s['params'] / 1e6:.3f} | {s['gmac']:.3f} "
            f"| {s['input_view']} {s['split']} |"
        )
    return lines


def _quick_overrides(plan: Plan) -> str:
    """The suite's ``--quick`` overrides, then each column's own, grouped by override set (the largest group, when
    there are several, as "the other columns")."""
    columns = plan.suite.columns()
    groups: dict[tuple[str, ...], list[str]] = {}
    for key, column in columns.items():
        if column.quick:
            groups.setdefault(column.quick, []).append(key)
    largest = max(groups, key=lambda q: len(groups[q]), default=())
    parts = [", ".join(f"`{o}`" for o in plan.suite.quick)] if plan.suite.quick else []
    for quick, keys in sorted(groups.items(), key=lambda g: g[0] == largest):
        who = ("every column" if len(keys) == len(columns) else
               "the other columns" if quick == largest and len(groups) > 1 else ", ".join(keys))
        parts.append(f"{who}: " + ", ".join(f"`{o}`" for o in quick))
    return "; ".join(parts)


def trust_note(plan: Plan) -> list[str]:
    """How far the report's numbers can be trusted, from the number of seeds and the mode."""
    n = len(plan.seeds)
    if n == 1:
        lines = [f"**How far to trust this: one seed ({plan.seeds[0]}).** Mean ± std and the 95% intervals need at "
                 "least two seeds: std is written as 0 and every interval as null (results.json `ci95: null`). One "
                 "seed cannot order the columns: on weakly supervised benchmarks a single student can move by more "
                 "than the differences between columns from one seed to the next. Read a difference here as one "
                 "draw, not as evidence; run ≥ 5 seeds (`--seeds 0,1,2,3,4`) for an interval."]
    else:
        lines = [f"**How far to trust this: {n} seeds ({', '.join(map(str, plan.seeds))}).** Differences to the "
                 "baseline are paired by seed (a student of the baseline's architecture shares its initialisation, "
                 "data order, augmentation and dropout/gate draws; one with added layers, e.g. DGF2, also shares the "
                 "initialisation of every layer the baseline has); their 95% interval is mean ± t(0.975, n − 1)·sd/√n with "
                 f"t(0.975, {n - 1}) = {t_quantile(0.975, n - 1):.2f}. An interval that contains 0 means the column "
                 "is not distinguishable from the baseline with these seeds."]
    overrides = _quick_overrides(plan)
    if plan.quick and overrides:
        lines += ["", f"Quick mode: shortened schedules (overrides {overrides}), so the numbers are not the full "
                  "suite's and its ordering of close columns is not evidence (run the full suite, in another --out, "
                  "for that)."]
    elif plan.quick:
        lines += ["", "Quick mode: the full suite's recipe on fewer seeds (the full suite reuses these runs with the "
                  "same --out), so each run is one of the full suite's, but with this few seeds the intervals are "
                  "wide and the ordering of close columns is not evidence."]
    return lines


def _inference_lines(rows: list[tuple[str, dict]]) -> list[str]:
    """Per column, the class filter and background power each run's evaluation chose on the validation split."""
    from darkseg.engine.inference_search import setting_words

    def setting(c: dict | None) -> str:
        return "configured" if c is None else setting_words(c)

    chosen = [(label, s) for label, s in rows if "inference_per_seed" in s]
    if not chosen:
        return []
    split = next(c["selected_on"] for _, s in chosen for c in s["inference_per_seed"] if c)
    return [f"Inference thresholds chosen on the {split} split, per seed (class filter, background power): "
            + "; ".join(f"{label}: " + " / ".join(setting(c) for c in s["inference_per_seed"]) for label, s in chosen)
            + ".", ""]


def save_figure(fig: plt.Figure, path: Path) -> Path:
    """Lay out, write at the report's resolution and release one figure."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def colour_labels(label: np.ndarray) -> np.ndarray:
    return VOC_PALETTE[label]


def display_image(img: torch.Tensor, brighten: bool = False) -> np.ndarray:
    x = img.permute(1, 2, 0).numpy()
    if brighten:
        x = x * min(0.45 / max(float(x.mean()), 1e-3), 8.0)
    return (np.clip(x, 0, 1) * 255).astype(np.uint8)


def _pick(dataset, min_labels: int, n: int) -> list[int]:
    """The first ``n`` samples with at least ``min_labels`` image labels (reads only as far as it needs)."""
    hits = (i for i in range(len(dataset)) if dataset[i]["labels"].sum() >= min_labels)
    return list(itertools.islice(hits, n))


def qualitative_figure(plan: Plan, table: Table, labels: dict[str, str], out: Path, n: int = 6) -> Path:
    """Fig. 5-style grid on test images: input (of the first grid column), depth, each grid column, ground truth."""
    columns = plan.suite.columns()
    seed = plan.seeds[0]
    keys = table.figures.grid
    cfgs = {k: plan.config(columns[k], seed) for k in keys}
    device = torch.device("cpu")
    models = {k: load_deployed(cfgs[k], None, device) for k in keys}
    view = cfgs[keys[0]].method.input
    with_depth = any(getattr(m, "uses_depth", False) for m in models.values())
    cfg = cfgs[keys[-1]]
    dataset = build_dataset(cfg.eval.data or cfg.data, plan.split or cfg.eval.split,
                            (view, "mask", "labels") + (("depth",) if with_depth else ()), EvalTransform())
    picks = _pick(dataset, 2, n) or list(range(n))
    headers = [f"{view} input" + (" (brightened)" if view == "dark" else "")] + (["depth"] if with_depth else [])
    headers += [labels[k] for k in keys] + ["ground truth"]
    fig, axes = plt.subplots(len(picks), len(headers), figsize=(2 * len(headers), 2 * len(picks)), squeeze=False)
    for row, i in enumerate(picks):
        s = dataset[i]
        panels = [display_image(s[view], brighten=view == "dark")]
        if with_depth:
            panels.append((s["depth"][0].numpy() * 255).astype(np.uint8))
        for k in keys:
            model, inf = models[k], cfgs[k].eval.inference
            x = s[cfgs[k].method.input][None]
            depth = s["depth"][None] if getattr(model, "uses_depth", False) else None
            probs = predict_probs(model, x, inf, depth=depth)
            panels.append(colour_labels(labels_from_probs(probs, x, inf)[0].numpy()))
        panels.append(colour_labels(s["mask"].numpy().astype(np.uint8)))
        for col, img in enumerate(panels):
            ax = axes[row][col]
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
            ax.set_xticks([]), ax.set_yticks([])
            if row == 0:
                ax.set_title(headers[col], fontsize=8)
    return save_figure(fig, out / "qualitative.png")


def cam_figure(plan: Plan, table: Table, labels: dict[str, str], out: Path, n: int = 4) -> Path:
    """Class maps of the ground-truth classes of each ``cams`` column, each on the view it reads."""
    columns = plan.suite.columns()
    seed = plan.seeds[0]
    cfgs = {k: plan.config(columns[k], seed) for k in table.figures.cams}
    spec = [(k, c.method.input, f"{labels[k]} ({c.method.input})") for k, c in cfgs.items()]
    cfg = cfgs[table.figures.cams[-1]]
    views = tuple(dict.fromkeys(("image", *(v for _, v, _ in spec), "depth", "mask", "labels")))
    dataset = build_dataset(cfg.eval.data or cfg.data, plan.split or cfg.eval.split, views, EvalTransform())
    models = {k: load_deployed(c, None, torch.device("cpu")) for k, c in cfgs.items()}
    picks = _pick(dataset, 1, n)
    fig, axes = plt.subplots(len(picks), 1 + len(spec), figsize=(2 * (1 + len(spec)), 2 * len(picks)), squeeze=False)
    for row, i in enumerate(picks):
        s = dataset[i]
        axes[row][0].imshow(display_image(s["image"]))
        for col, (k, view, title) in enumerate(spec, start=1):
            model = models[k]
            depth = s["depth"][None] if getattr(model, "uses_depth", False) else None
            fg = class_maps(model, s[view][None], s["labels"], depth).amax(0).numpy()
            axes[row][col].imshow(display_image(s[view], brighten=view == "dark"))
            axes[row][col].imshow(fg, cmap="jet", alpha=0.5, vmin=0, vmax=1)
            if row == 0:
                axes[row][col].set_title(title, fontsize=8)
        axes[row][0].set_title("normal image" if row == 0 else "", fontsize=8)
        for ax in axes[row]:
            ax.set_xticks([]), ax.set_yticks([])
    return save_figure(fig, out / "cams.png")


def per_class_figure(summary: dict[str, dict], labels: dict[str, str], out: Path) -> Path:
    """Grouped bars of the mean per-class IoU of every column."""
    keys = list(summary)
    classes = list(summary[keys[0]]["per_class_iou"])
    x = np.arange(len(classes))
    width = 0.8 / len(keys)
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(classes)), 3.5))
    for j, k in enumerate(keys):
        vals = [summary[k]["per_class_iou"][c] for c in classes]
        ax.bar(x + (j - (len(keys) - 1) / 2) * width, np.nan_to_num(vals), width, label=labels.get(k, k))
    ax.set_xticks(x, classes, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("IoU (%)")
    ax.legend(fontsize=7)
    return save_figure(fig, out / "per_class_iou.png")


def _read_csv(path: Path, column: str) -> tuple[list[int], list[float]]:
    if not path.is_file():
        return [], []
    rows = [r for r in csv.DictReader(path.open()) if r.get(column)]
    return [int(float(r["iteration"])) for r in rows], [float(r[column]) for r in rows]


def last_fifth_change(run_dir: Path) -> float | None:
    """Val mIoU at a run's last validation minus at its latest validation at or before 80% of that iteration (the
    convergence check of the benchmark issue: flat over the last fifth); None with fewer than two such validations."""
    its, miou = _read_csv(run_dir / "val_log.csv", "miou")
    if not its:
        return None
    by_it = dict(zip(its, miou, strict=True))
    last = max(by_it)
    earlier = [i for i in by_it if i <= 0.8 * last]
    return by_it[last] - by_it[max(earlier)] if earlier else None


def _convergence_lines(rows: list[tuple[str, dict]]) -> list[str]:
    """Per column, the last-fifth val change: mean ± std over seeds, its 95% interval and the per-seed values."""
    def cell(c: dict) -> str:
        ci = "" if c["ci95"] is None else f" [{c['ci95'][0]:+.2f}, {c['ci95'][1]:+.2f}]"
        return f"{c['mean']:+.2f} ± {c['std']:.2f}{ci} ({' / '.join(f'{v:+.2f}' for v in c['per_seed'])})"

    checked = [(label, s["val_last_fifth_change"]) for label, s in rows if "val_last_fifth_change" in s]
    if not checked:
        return []
    return ["Convergence: change of val mIoU over the last fifth of each run (last validation minus the one at 80%; "
            "mean ± std over seeds [95% CI] (per seed)): " + "; ".join(f"{label}: {cell(c)}" for label, c in checked)
            + ".", ""]


def curves_figure(results: dict[str, list[RunResult]], labels: dict[str, str], out: Path) -> Path:
    """Classification loss (common to every column) and validation mIoU against iterations (first seed)."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    for key, runs in results.items():
        it, loss = _read_csv(runs[0].run_dir / "train_log.csv", "loss/cls")
        a.plot(it, loss, label=labels.get(key, key), lw=1)
        it, miou = _read_csv(runs[0].run_dir / "val_log.csv", "miou")
        b.plot(it, miou, marker="o", ms=3, label=labels.get(key, key), lw=1)
    a.set(xlabel="iteration", ylabel="classification loss L_cls")
    b.set(xlabel="iteration", ylabel="val mIoU (%)")
    a.legend(fontsize=7)
    return save_figure(fig, out / "curves.png")


def _gaps(table: Table, summary: dict[str, dict]) -> dict[str, float]:
    """results.json's gap figures: ``gap_recovered`` of the headline column, ``gap_recovered_<key>`` of the others."""
    out = {}
    for key in table.compared():
        if "gap_recovered" in summary.get(key, {}):
            out["gap_recovered" if key == table.gap_column else f"gap_recovered_{key}"] = summary[key]["gap_recovered"]
    return dict(sorted(out.items(), key=lambda kv: kv[0] != "gap_recovered"))


def write_report(
    plan: Plan, paper: Paper, main: dict[str, list[RunResult]], ablations: dict[str, dict[str, list[RunResult]]],
    labels: dict[str, str], command: str, date: str, elapsed: float,
) -> dict:
    """Write results.json, report.md and the figures into ``plan.out``; return the results dict."""
    out = plan.out
    out.mkdir(parents=True, exist_ok=True)
    table = plan.suite.main
    summary = summarise(main, table)
    gaps = _gaps(table, summary)
    results = {
        "paper": paper.name, "suite": plan.suite.name, "quick": plan.quick, "seeds": list(plan.seeds),
        "command": command, "date": date, "elapsed_s": round(elapsed, 1), "columns": summary, **gaps,
        "ablations": {name: {"title": plan.suite.ablations[name].title,
                             "rows": summarise(res, plan.suite.ablations[name])} for name, res in ablations.items()},
    }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    figures = [per_class_figure(summary, labels, out), curves_figure(main, labels, out)]
    if table.figures.grid:
        figures.append(qualitative_figure(plan, table, labels, out))
    if table.figures.cams:
        figures.append(cam_figure(plan, table, labels, out))
    figures += [extra(plan, table, labels, out) for extra in table.figures.extra]
    md = [f"# {paper.title} reproduction: suite `{plan.suite.name}`{' (quick)' if plan.quick else ''}", "",
          f"Command: `{command}`  ", f"Date: {date}; seeds {', '.join(map(str, plan.seeds))}; "
          f"wall time {elapsed / 60:.1f} min.", "", *trust_note(plan), "",
          f"## {table.title}", "", *_table([(labels[k], summary[k]) for k in summary], labels, table.baseline), "",
          *_pseudo_lines([(labels[k], summary[k]) for k in summary]),
          *_inference_lines([(labels[k], summary[k]) for k in summary]),
          *_convergence_lines([(labels[k], summary[k]) for k in summary])]
    if "gap_recovered" in gaps:
        extra = [f"{labels[k.removeprefix('gap_recovered_')]} alone: {v:.2f}" for k, v in gaps.items()
                 if k != "gap_recovered"] + ([table.gap_note] if table.gap_note else [])
        ci = summary[table.gap_column]["gap_recovered_ci95"]
        interval = (f", 95% interval of the per-seed gaps [{ci[0]:.2f}, {ci[1]:.2f}]" if ci is not None
                    else ", no interval with one seed")
        md += [f"Gap recovered = ({labels[table.gap_column]} − baseline) / ({labels[table.reference]} − baseline) "
               f"= **{gaps['gap_recovered']:.2f}** on the means{interval}"
               + (f" ({'; '.join(extra)})" if extra else "") + ".", ""]
    md += ["mIoU/PixAcc are mean ± std over seeds (per seed: the seeds in order) on each column's evaluation split "
           "and input view. Δ is the mean over seeds of the column's mIoU minus the baseline's with the same seed. "
           "Params/GMAC are the deployed network at the training crop size.", ""]
    for name in ablations:
        rows = results["ablations"][name]["rows"]
        named = [(labels.get(k, k), rows[k]) for k in rows]
        md += [f"## {plan.suite.ablations[name].title}", "",
               *_table(named, labels, plan.suite.ablations[name].baseline), "", *_pseudo_lines(named)]
    md += ["## Figures", ""] + [f"![{p.stem}]({p.name})" for p in figures]
    (out / "report.md").write_text("\n".join(md) + "\n")
    return results
