"""`darkseg reproduce dgkd-wlss --suite scenes --two-stage` end to end on the tiny benchmark: the +DGKD+DGF2 run's
pseudo masks (the same as `darkseg pseudo` writes) train DeepLab-v2, reported beside the single-stage number; the
export resumes when killed and is reused when complete."""

import json

import numpy as np
import pytest
import yaml

from darkseg.cli import main
from darkseg.data.io import read_mask


def test_two_stage_retrains_on_the_exported_pseudo_masks_and_reuses_them(tmp_path, tiny, tiny_scenes, capsys):
    # the SSSS-only width overrides of `tiny` are not keys of DeepLab-v2's config: every run here must accept them
    run = [a for a in tiny if not a.startswith(("model.aspp", "model.decoder", "model.skip"))]
    run += ["train.iterations=2", "train.val_every=0"]
    out = tmp_path / "rep"
    args = ["reproduce", "dgkd-wlss", "--suite", "scenes", "--quick", "--seeds", "0", "--out", str(out), *run]
    source = out / "runs" / "dgkd_dgf2" / "seed0"
    assert main([*args, "--two-stage"]) == 0  # Table 1, then the masks of its +DGKD+DGF2 run and DeepLab-v2
    printed = capsys.readouterr().out
    assert "Table 6" in printed and "DGKD-WLSS (two-stage)" in printed
    results = json.loads((out / "results.json").read_text())
    rows = results["ablations"]["two-stage"]["rows"]
    assert list(rows) == ["dgkd_dgf2", "two_stage", "two_stage_scratch"]  # the second stage from scratch too
    assert rows["dgkd_dgf2"]["miou_per_seed"] == results["columns"]["dgkd_dgf2"]["miou_per_seed"]
    two = rows["two_stage"]
    assert (two["input_view"], two["split"], two["seeds"]) == ("dark", "test", [0])
    assert two["diff_vs_baseline"]["mean"] == pytest.approx(two["miou"] - rows["dgkd_dgf2"]["miou"])
    assert two["diff_vs_baseline"]["ci95"] is None  # one seed
    assert "DGKD-WLSS (two-stage)" in (out / "report.md").read_text()

    masks = sorted((source / "pseudo_masks").glob("*.png"))
    train_ids = (tiny_scenes / "ImageSets" / "Segmentation" / "train.txt").read_text().split()
    assert sorted(m.stem for m in masks) == sorted(train_ids)
    score = json.loads((source / "pseudo_masks.json").read_text())
    assert score["images"] == len(train_ids) and 0.0 <= score["miou"] <= 100.0
    saved = yaml.safe_load((out / "runs" / "two_stage" / "seed0" / "config.yaml").read_text())
    assert saved["data"]["train_mask_dir"] == str(source / "pseudo_masks")
    assert (saved["model"]["name"], saved["method"]["input"]) == ("deeplabv2", "dark")

    cli = tmp_path / "cli"  # `darkseg pseudo` on the same run writes the same masks
    assert main(["pseudo", "configs/dgkd_wlss/scenes_dgkd_dgf2.yaml", *run, f"output_dir={source}",
                 "--split", "train", "--out", str(cli)]) == 0
    for m in masks:
        assert np.array_equal(read_mask(m), read_mask(cli / m.name)), m.name

    first = read_mask(masks[0])  # a killed export: one mask missing, no export.done
    masks[0].unlink()
    (source / "export.done").unlink()
    capsys.readouterr()
    assert main([*args, "--two-stage"]) == 0
    printed = capsys.readouterr().out
    assert f"(1 written, {len(train_ids) - 1} kept" in printed and "starting from scratch" not in printed
    assert np.array_equal(read_mask(masks[0]), first)
    assert main([*args, "--two-stage"]) == 0  # complete: reused, nothing written or trained
    printed = capsys.readouterr().out
    assert "train images in" not in printed and "starting from scratch" not in printed

