"""`darkseg reproduce dania` and `darkseg reproduce ccdistill`: the declared columns are the external interface
(source_only first), adapted DANIA/DANNet models start from the source-only model of their seed, the suite aligns the
target pairs before training, and a tiny two-seed run writes results.json in the frame's format with paired intervals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from darkseg.cli import main
from darkseg.reproduce.papers import PAPERS
from darkseg.reproduce.runner import Plan

CONFIGS = Path("configs").resolve()
TINY = dict(height=32, width=64, n_train=4, n_val=2, n_night_train=4, n_night_val=2, n_night_test=2, seed=1)
DATA = {"scenes_daynight": TINY, "augment": {"crop_size": 32}, "batch_size": 2, "num_workers": 0}
TRAIN = {"iterations": 2, "progress": False, "threads": 1, "val_every": 0, "ckpt_every": 0, "log_every": 1}


def test_dania_columns_and_init_from_source_only(tmp_path):
    suite = PAPERS["dania"].suites["scenes"]
    assert [c.key for c in suite.main.columns] == ["source_only", "dannet", "dania"]
    assert suite.main.baseline == "source_only" and suite.prepare is not None
    plan = Plan(suite, CONFIGS, tmp_path, (3,), quick=False)
    source = plan.run_dir(suite.columns()["source_only"], 3) / "model_final.safetensors"
    for key in ("dannet", "dania"):
        cfg = plan.config(suite.columns()[key], 3)
        assert cfg.method.name == "dania" and cfg.method.init == source and cfg.seed == 3
    assert plan.config(suite.columns()["dannet"], 3).method.align == "none"
    for table in suite.ablations.values():  # every ablation row resolves to a DANIA config starting from source-only
        for col in table.columns:
            assert plan.config(col, 3).method.init == source


def test_ccdistill_columns_share_the_source_only_recipe(tmp_path):
    suite = PAPERS["ccdistill"].suites["scenes"]
    assert [c.key for c in suite.main.columns] == ["source_only", "no_cdc_cds", "ccdistill"]
    plan = Plan(suite, CONFIGS, tmp_path, (2,), quick=False)
    cfgs = {k: plan.config(c, 2) for k, c in suite.columns().items()}
    assert cfgs["no_cdc_cds"].method.cdc.weight == 0 and cfgs["no_cdc_cds"].method.cds.weight == 0
    assert cfgs["ccdistill"].method.cdc.weight > 0 and cfgs["ccdistill"].method.cds.weight > 0
    base = cfgs["source_only"]
    for cfg in cfgs.values():  # paired with the baseline: same segmenter, data, schedule and optimiser
        assert cfg.model == base.model and cfg.train.iterations == base.train.iterations
        assert cfg.train.optim == base.train.optim and cfg.data.augment == base.data.augment


def _tiny_configs(tmp_path: Path, paper: str, root: Path) -> Path:
    """A configs folder whose files are the paper's own configs plus tiny sizes (data, widths, iterations)."""
    out = tmp_path / "configs"
    for col in PAPERS[paper].suites["scenes"].main.columns:
        path = out / col.config
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {**DATA, "root": str(root)}
        extra: dict = {"data": data, "train": TRAIN, "eval": {"inference": {"batch_size": 2}}}
        if paper == "dania" and col.key != "source_only":
            data["target"] = {**DATA, "root": str(root)}
            del data["target"]["batch_size"], data["target"]["num_workers"]
            extra["model"] = {"segmenter": {"backbone": {"width": 0.0625}}, "relight": {"width": 4}}
        elif paper == "ccdistill" and col.key != "source_only":
            data["target"] = {"root": str(root), "scenes_daynight": TINY, "augment": {"crop_size": 32}}
            extra["model"] = {"backbone": {"width": 0.0625}}
        else:
            extra["model"] = {"backbone": {"width": 0.0625}}
        path.write_text(yaml.safe_dump({"base": str(CONFIGS / col.config), **extra}))
    return out


@pytest.mark.parametrize("paper", ["dania", "ccdistill"])
def test_tiny_suite_writes_results_with_paired_intervals(paper, tmp_path, capsys):
    root = tmp_path / "scenes_daynight"
    out = tmp_path / "out"
    configs = _tiny_configs(tmp_path, paper, root)
    assert main(["reproduce", paper, "--suite", "scenes", "--seeds", "0,1", "--out", str(out),
                 "--configs", str(configs), "--jobs", "1"]) == 0
    results = json.loads((out / "results.json").read_text())
    keys = [c.key for c in PAPERS[paper].suites["scenes"].main.columns]
    assert list(results["columns"]) == keys
    for key in keys:
        col = results["columns"][key]
        assert col["seeds"] == [0, 1] and len(col["miou_per_seed"]) == 2 and col["miou_std"] >= 0
        if key != "source_only":
            diffs = [a - b for a, b in zip(col["miou_per_seed"], results["columns"]["source_only"]["miou_per_seed"])]
            assert col["diff_vs_baseline"]["mean"] == pytest.approx(sum(diffs) / 2)
            lo, hi = col["diff_vs_baseline"]["ci95"]
            assert lo <= col["diff_vs_baseline"]["mean"] <= hi
    if paper == "dania":
        assert (root / "align" / "night_train" / "report.json").is_file()  # the suite aligned the pairs first
        assert "alignment of scenes_daynight night_train" in capsys.readouterr().out
        assert (out / "relight.png").is_file()
