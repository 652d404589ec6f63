"""`darkseg reproduce plda --suite scenes`: the eight columns of the main table, each + PLDA column paired with its host
(same recipe, same seed), every PLDA table scored by the CAM protocol; per-column baselines of `Table`."""

from pathlib import Path

import pytest

from darkseg.reproduce import plda
from darkseg.reproduce.papers import PAPERS
from darkseg.reproduce.report import summarise
from darkseg.reproduce.runner import Plan, RunResult
from darkseg.reproduce.tables import Column, Table, order_runs

CONFIGS = Path("configs")
KEYS = ["seam", "seam_plda", "ssss", "ssss_plda", "dark_seam", "dark_seam_plda", "dark_ssss", "dark_ssss_plda"]


def _configs(tmp_path: Path, quick: bool = False) -> tuple[Plan, dict]:
    plan = Plan(PAPERS["plda"].suites["scenes"], CONFIGS, tmp_path, (4,), quick=quick)
    return plan, {key: plan.config(col, 4) for key, col in plan.suite.columns().items()}


def _without_plda(cfg) -> dict:
    dump = cfg.model_dump()
    dump["method"].pop("plda", None)
    for key in ("name", "output_dir"):
        dump.pop(key)
    return dump


@pytest.mark.parametrize("quick", [False, True])
def test_main_table_pairs_each_plda_column_with_its_host_recipe(tmp_path, quick):
    plan, cfgs = _configs(tmp_path, quick)
    table = plan.suite.main
    assert [c.key for c in table.columns] == KEYS and table.baseline is None
    assert {k: table.baseline_of(k) for k in table.compared()} == {
        "seam_plda": "seam", "ssss_plda": "ssss", "dark_seam_plda": "dark_seam", "dark_ssss_plda": "dark_ssss"}
    for plug, host in table.pairs:
        assert cfgs[host].method.plda is None and cfgs[plug].method.plda is not None
        assert cfgs[plug].method.plda.theta == 0.6 and cfgs[plug].method.plda.assign == "mask"
        assert _without_plda(cfgs[plug]) == _without_plda(cfgs[host])  # same recipe and seed: paired runs
        assert cfgs[plug].seed == cfgs[host].seed == 4
    for key in KEYS:
        assert cfgs[key].method.name == ("seam" if "seam" in key else "ssss")
        assert cfgs[key].method.input == ("dark" if key.startswith("dark_") else "image")
        assert cfgs[key].train.iterations == (80 if quick else 150)
    assert len(plan.suite.quick_seeds) >= 2 and len(plan.suite.default_seeds) >= 5


def test_every_cam_table_is_scored_on_the_train_split_cam_seeds(tmp_path):
    suite = PAPERS["plda"].suites["scenes"]
    for name, table in (("main", suite.main), *suite.ablations.items()):
        scores = {c.score for c in table.columns}
        assert scores == ({None} if name == "two-stage" else {plda.SCORE}), name
    assert plda.SCORE.keywords == {"scales": plda.SCORE_SCALES, "max_images": plda.SCORE_IMAGES}


def test_ablation_tables_compare_seam_variants_with_seam(tmp_path):
    plan, cfgs = _configs(tmp_path)
    suite = plan.suite
    assert set(suite.ablations) == {"components", "alignment", "assign", "theta", "cam-host", "two-stage"}
    for name, table in suite.ablations.items():
        if name == "two-stage":
            assert [c.key for c in table.columns] == ["seam_deeplabv1", "seam_plda_deeplabv1"]
            continue
        if name == "cam-host":  # test_cam_host_table_...
            continue
        keys = [c.key for c in table.columns]  # SEAM, the variants, the full method (the main table's runs)
        assert keys[0] == "seam" == table.baseline and keys[-1] == "seam_plda"
        assert table.columns[0] is suite.main.columns[0] and table.columns[-1] is suite.main.columns[1]
    assert {cfgs[f"theta_{t}"].method.plda.theta for t in ("0.4", "0.5", "0.7", "0.8")} == {0.4, 0.5, 0.7, 0.8}
    assert cfgs["dann"].method.plda.alignment == "global" and cfgs["simple_assign"].method.plda.assign == "simple"
    assert [c.key for c in suite.ablations["alignment"].columns] == ["seam", "mmd", "dann", "mada", "seam_plda"]
    assert [c.key for c in suite.ablations["assign"].columns] == ["seam", "simple_assign", "mask_oc", "seam_plda"]
    assert (cfgs["mmd"].method.plda.alignment, cfgs["mada"].method.plda.alignment) == ("mmd", "mada")
    for row in ("mmd", "mada", "mask_oc"):  # one change each against SEAM + PLDA
        variant, full = cfgs[row].method.plda.model_dump(), cfgs["seam_plda"].method.plda.model_dump()
        assert {k for k in full if variant[k] != full[k]} == ({"alignment"} if row != "mask_oc" else {"assign", "oc"})


def test_mask_oc_reads_the_cam_run_of_the_same_seed(tmp_path):
    plan, cfgs = _configs(tmp_path)
    columns = plan.suite.columns()
    oc = cfgs["mask_oc"].method.plda.oc
    assert oc.weights == str(plan.run_dir(columns["cam"], 4) / "model_final.safetensors")
    assert oc.model is None and oc.target_pseudo == "oc"  # the architecture comes from the CAM run's config.yaml
    ordered = [c.key for c in order_runs(columns, ("mask_oc",))]
    assert ordered == ["cam", "mask_oc"]  # the ordinary classifier trains first
    assert cfgs["cam"].model.name == "cam" and cfgs["cam"].method.plda is None


def test_cam_host_table_pairs_cam_plda_with_the_cam_baseline_on_seams_recipe(tmp_path):
    plan, cfgs = _configs(tmp_path)
    table = plan.suite.ablations["cam-host"]
    assert [c.key for c in table.columns] == ["cam", "cam_plda"] and table.baseline == "cam"
    assert {c.score for c in table.columns} == {plda.SCORE}
    assert _without_plda(cfgs["cam_plda"]) == _without_plda(cfgs["cam"])  # paired runs
    assert cfgs["cam_plda"].method.plda.model_dump() == cfgs["seam_plda"].method.plda.model_dump()
    cam, seam = cfgs["cam"].model_dump(), cfgs["seam"].model_dump()
    for section in ("seed", "data", "train", "eval"):  # SEAM's scenes recipe
        assert cam[section] == seam[section], section
    assert cam["model"]["backbone"] == seam["model"]["backbone"]


def _runs(key: str, mious: dict[int, float]) -> list[RunResult]:
    return [RunResult(key, seed, Path("."), {"miou": m, "pixacc": 50.0, "per_class_iou": {"bg": m}, "split": "train"},
                      10, 0.5, "image") for seed, m in mious.items()]


def test_table_pairs_give_each_column_its_own_baseline():
    cols = tuple(Column(k, k, "x.yaml") for k in ("a", "a_plus", "b", "b_plus", "c"))
    table = Table("t", cols, baseline="a", pairs=(("b_plus", "b"),))
    assert table.compared() == ("a_plus", "b", "b_plus", "c")
    assert [table.baseline_of(k) for k in table.compared()] == ["a", "a", "b", "a"]
    summary = summarise({"a": _runs("a", {0: 10.0, 1: 20.0}), "a_plus": _runs("a_plus", {0: 13.0, 1: 21.0}),
                         "b": _runs("b", {0: 30.0, 1: 30.0}), "b_plus": _runs("b_plus", {1: 35.0, 0: 31.0}),
                         "c": _runs("c", {0: 10.0, 1: 20.0})}, table)
    assert summary["b_plus"]["diff_vs_baseline"]["mean"] == pytest.approx(3.0)  # (1 + 5) / 2, paired by seed
    assert summary["b_plus"]["baseline"] == "b" and summary["a_plus"]["baseline"] == "a"
    assert summary["a_plus"]["diff_vs_baseline"]["mean"] == pytest.approx(2.0)
    assert "diff_vs_baseline" not in summary["a"]
    from darkseg.reproduce.report import _table

    labels = {"a": "A", "a_plus": "A+", "b": "B", "b_plus": "B+", "c": "C"}
    lines = {row.split(" | ")[0]: row for row in _table([(k, summary[k]) for k in summary], labels, "a")}
    assert "+3.0 [" in lines["| b_plus"] and "] vs B (" in lines["| b_plus"]  # a row's own baseline is named
    assert "+2.0 [" in lines["| a_plus"] and " vs " not in lines["| a_plus"]  # the table's baseline is the header's
    only_pairs = Table("t", cols, pairs=(("a_plus", "a"), ("b_plus", "b")))
    assert only_pairs.compared() == ("a_plus", "b_plus")
    for bad in ((("a", "a"),), (("a_plus", "a"), ("a_plus", "b")), (("a_plus", "zzz"),)):
        with pytest.raises(ValueError):
            Table("t", cols, pairs=bad)
