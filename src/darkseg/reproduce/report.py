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
from darkseg.reproduce.suites import Run  # noqa: E402


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(results: dict[str, list[RunResult]]) -> dict[str, dict]:
    """Mean ± std over seeds of mIoU and PixAcc, per-class IoU means, deployed params/GMAC, per-seed values."""
    out = {}
    for key, runs in results.items():
        miou, miou_sd = _mean_std([r.metrics["miou"] for r in runs])
        pix, pix_sd = _mean_std([r.metrics["pixacc"] for r in runs])
        classes = runs[0].metrics["per_class_iou"]
        per_class = {c: statistics.fmean(r.metrics["per_class_iou"][c] for r in runs) for c in classes}
        out[key] = {
            "miou": miou, "miou_std": miou_sd, "pixacc": pix, "pixacc_std": pix_sd,
            "per_class_iou": per_class, "params": runs[0].params, "gmac": runs[0].gmac,
            "input_view": runs[0].input_view, "split": runs[0].metrics["split"],
            "seeds": {str(r.seed): {"miou": r.metrics["miou"], "pixacc": r.metrics["pixacc"]} for r in runs},
        }
    return out


def gap_recovered(summary: dict[str, dict], column: str) -> float:
    """(column − baseline) / (teacher − baseline) on mean mIoU (0.84 for the paper's VOC Table 1)."""
    t, b, c = summary["teacher"]["miou"], summary["baseline"]["miou"], summary[column]["miou"]
    return (c - b) / (t - b) if t != b else math.nan


def _table(rows: list[tuple[str, dict]], baseline: dict | None) -> list[str]:
    lines = ["| run | mIoU (%) | PixAcc (%) | Params (M) | GMAC | evaluated on |", "|---|---|---|---|---|---|"]
    for label, s in rows:
        delta = f" ({s['miou'] - baseline['miou']:+.1f})" if baseline is not None and s is not baseline else ""
        lines.append(
            f"| {label} | {s['miou']:.1f} ± {s['miou_std']:.1f}{delta} | {s['pixacc']:.1f} ± {s['pixacc_std']:.1f} "
            f"| {s['params'] / 1e6:.3f} | {s['gmac']:.3f} | {s['input_view']} {s['split']} |"
        )
    return lines


def _save(fig: plt.Figure, path: Path) -> Path:
    """Lay out, write at the report's resolution and release one figure."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _colour(label: np.ndarray) -> np.ndarray:
    return VOC_PALETTE[label]


def _display(img: torch.Tensor, brighten: bool = False) -> np.ndarray:
    x = img.permute(1, 2, 0).numpy()
    if brighten:
        x = x * min(0.45 / max(float(x.mean()), 1e-3), 8.0)
    return (np.clip(x, 0, 1) * 255).astype(np.uint8)


def _pick(dataset, min_labels: int, n: int) -> list[int]:
    """The first ``n`` samples with at least ``min_labels`` image labels (reads only as far as it needs)."""
    hits = (i for i in range(len(dataset)) if dataset[i]["labels"].sum() >= min_labels)
    return list(itertools.islice(hits, n))


def qualitative_figure(plan: Plan, columns: tuple[Run, ...], out: Path, n: int = 6) -> Path:
    """Fig. 5-style grid on test images: dark input, depth, baseline, +DGKD, +DGKD+DGF2, ground truth."""
    keys = ["baseline", "dgkd", "dgkd_dgf2"]
    runs = {r.key: r for r in columns}
    seed = plan.seeds[0]
    cfg = plan.config(runs["dgkd_dgf2"], seed)
    device = torch.device("cpu")
    cfgs = {k: plan.config(runs[k], seed) for k in keys}
    models = {k: load_deployed(cfgs[k], None, device) for k in keys}
    dataset = build_dataset(cfg.eval.data or cfg.data, plan.split or cfg.eval.split,
                            ("dark", "depth", "mask", "labels"), EvalTransform())
    picks = _pick(dataset, 2, n) or list(range(n))
    headers = ["dark input (brightened)", "depth", "baseline", "+DGKD", "+DGKD+DGF2", "ground truth"]
    fig, axes = plt.subplots(len(picks), len(headers), figsize=(2 * len(headers), 2 * len(picks)), squeeze=False)
    for row, i in enumerate(picks):
        s = dataset[i]
        panels = [_display(s["dark"], brighten=True), (s["depth"][0].numpy() * 255).astype(np.uint8)]
        for k in keys:
            model = models[k]
            inf = cfgs[k].eval.inference
            depth = s["depth"][None] if getattr(model, "uses_depth", False) else None
            probs = predict_probs(model, s["dark"][None], inf, depth=depth)
            panels.append(_colour(labels_from_probs(probs, s["dark"][None], inf)[0].numpy()))
        gt = s["mask"].numpy().copy()
        panels.append(_colour(gt.astype(np.uint8)))
        for col, img in enumerate(panels):
            ax = axes[row][col]
            ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
            ax.set_xticks([]), ax.set_yticks([])
            if row == 0:
                ax.set_title(headers[col], fontsize=8)
    return _save(fig, out / "qualitative.png")


def cam_figure(plan: Plan, columns: tuple[Run, ...], out: Path, n: int = 4) -> Path:
    """Class maps of the ground-truth classes: teacher (normal image) vs. baseline and DGKD-WLSS (dark image)."""
    runs = {r.key: r for r in columns}
    seed = plan.seeds[0]
    spec = [("teacher", "image", "teacher (normal)"), ("baseline", "dark", "baseline (dark)"),
            ("dgkd_dgf2", "dark", "+DGKD+DGF2 (dark)")]
    cfg = plan.config(runs["dgkd_dgf2"], seed)
    dataset = build_dataset(cfg.eval.data or cfg.data, plan.split or cfg.eval.split,
                            ("image", "dark", "depth", "mask", "labels"), EvalTransform())
    models = {k: load_deployed(plan.config(runs[k], seed), None, torch.device("cpu")) for k, _, _ in spec}
    picks = _pick(dataset, 1, n)
    fig, axes = plt.subplots(len(picks), 1 + len(spec), figsize=(2 * (1 + len(spec)), 2 * len(picks)), squeeze=False)
    for row, i in enumerate(picks):
        s = dataset[i]
        axes[row][0].imshow(_display(s["image"]))
        for col, (k, view, title) in enumerate(spec, start=1):
            model = models[k]
            depth = s["depth"][None] if getattr(model, "uses_depth", False) else None
            fg = class_maps(model, s[view][None], s["labels"], depth).amax(0).numpy()
            axes[row][col].imshow(_display(s[view], brighten=view == "dark"))
            axes[row][col].imshow(fg, cmap="jet", alpha=0.5, vmin=0, vmax=1)
            if row == 0:
                axes[row][col].set_title(title, fontsize=8)
        axes[row][0].set_title("normal image" if row == 0 else "", fontsize=8)
        for ax in axes[row]:
            ax.set_xticks([]), ax.set_yticks([])
    return _save(fig, out / "cams.png")


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
    return _save(fig, out / "per_class_iou.png")


def _read_csv(path: Path, column: str) -> tuple[list[int], list[float]]:
    if not path.is_file():
        return [], []
    rows = [r for r in csv.DictReader(path.open()) if r.get(column)]
    return [int(float(r["iteration"])) for r in rows], [float(r[column]) for r in rows]


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
    return _save(fig, out / "curves.png")


def write_report(
    plan: Plan, table1: dict[str, list[RunResult]], ablations: dict[str, tuple[str, dict[str, list[RunResult]]]],
    labels: dict[str, str], command: str, date: str, elapsed: float,
) -> dict:
    """Write results.json, report.md and the figures into ``plan.out``; return the results dict."""
    out = plan.out
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise(table1)
    results = {
        "suite": plan.suite.name, "quick": plan.quick, "seeds": list(plan.seeds), "command": command,
        "date": date, "elapsed_s": round(elapsed, 1), "columns": summary,
        "gap_recovered": gap_recovered(summary, "dgkd_dgf2"),
        "gap_recovered_dgkd": gap_recovered(summary, "dgkd"),
        "ablations": {name: {"title": title, "rows": summarise(res)} for name, (title, res) in ablations.items()},
    }
    (out / "results.json").write_text(json.dumps(results, indent=2))
    figures = [per_class_figure(summary, labels, out), curves_figure(table1, labels, out),
               qualitative_figure(plan, plan.suite.columns, out), cam_figure(plan, plan.suite.columns, out)]
    md = [f"# DGKD-WLSS reproduction: suite `{plan.suite.name}`{' (quick)' if plan.quick else ''}", "",
          f"Command: `{command}`  ", f"Date: {date}; seeds {', '.join(map(str, plan.seeds))}; "
          f"wall time {elapsed / 60:.1f} min.", "",
          "## Table 1", "", *_table([(labels[k], summary[k]) for k in summary], summary["baseline"]), "",
          f"Gap recovered by DGKD-WLSS = (DGKD+DGF2 − baseline) / (teacher − baseline) = "
          f"**{results['gap_recovered']:.2f}** (+DGKD alone: {results['gap_recovered_dgkd']:.2f}; "
          "paper, VOC: 0.84).", "",
          "mIoU/PixAcc are mean ± std over seeds on each column's evaluation split (teacher: normal-light test "
          "images; students: dark test images). Params/GMAC are the deployed network at the training crop size.", ""]
    for title, res in ablations.values():
        rows = summarise(res)
        md += [f"## {title}", "", *_table([(labels.get(k, k), rows[k]) for k in rows], rows.get("baseline")), ""]
    md += ["## Figures", ""] + [f"![{p.stem}]({p.name})" for p in figures]
    (out / "report.md").write_text("\n".join(md) + "\n")
    return results
