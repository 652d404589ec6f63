"""`darkseg reproduce plda --suite scenes --quick` end to end on the tiny benchmark: the results.json interface of
issue 16 (eight columns, CAM train-split mIoU, each + PLDA column's paired difference to its own host). One seed
keeps it short: the intervals of two seeds are tested on the summary (tests/reproduce/test_plda_suite.py)."""

import json

import pytest

from darkseg.cli import main

KEYS = {"seam", "seam_plda", "ssss", "ssss_plda", "dark_seam", "dark_seam_plda", "dark_ssss", "dark_ssss_plda"}


def test_reproduce_plda_quick_writes_the_eight_columns_with_paired_differences(tmp_path, tiny):
    # the SSSS-only width overrides of `tiny` are not keys of SEAM's model config
    run = [a for a in tiny if not a.startswith(("model.aspp", "model.decoder", "model.skip"))]
    out = tmp_path / "rep"
    assert main(["reproduce", "plda", "--suite", "scenes", "--quick", "--seeds", "1", "--out", str(out), *run,
                 "train.iterations=1", "train.val_every=0"]) == 0
    results = json.loads((out / "results.json").read_text())
    columns = results["columns"]
    assert set(columns) == KEYS
    for key, col in columns.items():
        assert col["split"] == "train" and 0 <= col["miou"] <= 100
        assert col["seeds"] == [1] and col["miou_per_seed"] == [col["miou"]] and col["miou_std"] == 0.0
        assert col["input_view"] == ("dark" if key.startswith("dark_") else "image")
        if not key.endswith("_plda"):
            assert "diff_vs_baseline" not in col
            continue
        host = columns[key.removesuffix("_plda")]
        assert col["baseline"] == key.removesuffix("_plda")
        assert col["diff_vs_baseline"] == {"mean": pytest.approx(col["miou"] - host["miou"]), "ci95": None}
    metrics = json.loads((out / "runs" / "seam_plda" / "seed1" / "eval_metrics.json").read_text())
    assert metrics["split"] == "train" and f"{metrics['bg_threshold']:.2f}" in metrics["miou_per_threshold"]
    assert metrics["miou"] == max(metrics["miou_per_threshold"].values())
    assert (out / "cams.png").is_file() and "SSSS + PLDA (dark)" in (out / "report.md").read_text()
