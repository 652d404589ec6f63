"""`darkseg reproduce dgkd-wlss --suite scenes --quick` end to end on the tiny benchmark (reuse included)."""

import json

import torch

from darkseg.cli import main


def test_reproduce_quick_writes_results_and_reuses_runs(tmp_path, tiny, capsys):
    out = tmp_path / "rep"
    # one seed (the quick mode's are 0 and 1): a single draw is reported without intervals
    args = ["reproduce", "dgkd-wlss", "--suite", "scenes", "--quick", "--seeds", "0", "--out", str(out), *tiny,
            "train.iterations=2", "train.val_every=0"]
    assert main(args) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(results["columns"]) == {"teacher", "baseline", "dgkd", "dgkd_dgf2"}
    for col in results["columns"].values():
        assert 0 <= col["miou"] <= 100 and 0 <= col["pixacc"] <= 100
    assert results["columns"]["teacher"]["input_view"] == "image"
    assert results["columns"]["dgkd_dgf2"]["input_view"] == "dark"
    assert "gap_recovered" in results and "gap_recovered_dgkd" in results
    for key, col in results["columns"].items():  # the results.json interface of issue 13
        assert col["seeds"] == [0] and len(col["miou_per_seed"]) == 1 and col["miou_std"] == 0.0
        if key in ("dgkd", "dgkd_dgf2"):  # one seed: a paired difference but no interval
            diff = col["diff_vs_baseline"]
            assert diff["ci95"] is None
            assert diff["mean"] == col["miou"] - results["columns"]["baseline"]["miou"]
            assert col["gap_recovered_ci95"] is None
        else:
            assert "diff_vs_baseline" not in col
    report = (out / "report.md").read_text()
    assert "one seed (0)" in report and "1 seed: no interval" in report and "Quick mode" in report
    # the scenes recipes choose their inference thresholds on val: every run records its choice, the report lists it
    for col in results["columns"].values():
        assert [c["selected_on"] for c in col["inference_per_seed"]] == ["val"]
    assert "Inference thresholds chosen on the val split" in report
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
    assert err.count("\n") == 1 and "config.yaml: this run was made with train.iterations=2" in err
    capsys.readouterr()
    assert main([*args, "train.threads=1", "train.log_every=7"]) == 0  # keys that leave the weights alone may change
    assert "starting from scratch" not in capsys.readouterr().out


def test_interrupted_dgkd_run_resumes_exactly(tmp_path, tiny):
    """The diffusion noise generator is a function of (seed, iteration): a resumed DGKD run equals an unbroken one."""
    from darkseg.config import load_config
    from darkseg.engine.runner import train
    from darkseg.models.weights import read_weights

    teacher = tmp_path / "teacher"
    assert main(["train", "configs/dgkd_wlss/scenes_teacher.yaml", *tiny, f"output_dir={teacher}",
                 "train.iterations=1", "train.val_every=0"]) == 0
    common = [*tiny, "train.iterations=4", "train.val_every=0", "train.ckpt_every=0",
              f"method.teacher.weights={teacher / 'model_final.safetensors'}"]
    whole = load_config("configs/dgkd_wlss/scenes_dgkd.yaml", [*common, f"output_dir={tmp_path / 'whole'}"])
    split = load_config("configs/dgkd_wlss/scenes_dgkd.yaml", [*common, f"output_dir={tmp_path / 'split'}"])
    assert train(whole).completed
    assert not train(split, stop_at=2).completed
    assert train(split, resume=True).completed
    a = read_weights(tmp_path / "whole" / "model_final.safetensors")
    b = read_weights(tmp_path / "split" / "model_final.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
