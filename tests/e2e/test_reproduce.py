"""`darkseg reproduce dgkd-wlss --suite scenes --quick` end to end on the tiny benchmark (reuse included)."""

import json

from darkseg.cli import main


def test_reproduce_quick_writes_results_and_reuses_runs(tmp_path, tiny, capsys):
    out = tmp_path / "rep"
    args = ["reproduce", "dgkd-wlss", "--suite", "scenes", "--quick", "--out", str(out), *tiny, "train.iterations=2",
            "train.val_every=0"]
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["columns"]) == {"teacher", "baseline", "dgkd", "dgkd_dgf2"}
    for col in results["columns"].values():
        assert 0 <= col["miou"] <= 100 and 0 <= col["pixacc"] <= 100
    assert results["columns"]["teacher"]["input_view"] == "image"
    assert results["columns"]["dgkd_dgf2"]["input_view"] == "dark"
    assert "gap_recovered" in results
    for f in ("report.md", "per_class_iou.png", "qualitative.png", "cams.png", "curves.png"):
        assert (out / f).is_file(), f
    capsys.readouterr()
    assert main(args) == 0  # every run is reused: nothing is trained again
    printed = capsys.readouterr().out
    assert "starting from scratch" not in printed and "gap recovered" in printed

    # a finished run is only reused for the config that made it; a changed config is refused, not silently reused
    changed = [a if a != "train.iterations=2" else "train.iterations=3" for a in args]
    assert main(changed) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "config.yaml: this run was started with a different config" in err
