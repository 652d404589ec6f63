"""`darkseg reproduce asdt --suite scenes --ablation dark`: Table 4's six columns on the dark images, each paired with
its normal-light column (same config but the input view), baseline dark RRM; the main table is unchanged."""

from pathlib import Path

from darkseg.reproduce.papers import PAPERS
from darkseg.reproduce.runner import Plan

MAIN_KEYS = ["rrm", "class_teacher", "seg_teacher", "naive_max", "naive_mean", "asdt"]


def test_dark_table_is_table_4_on_the_dark_images(tmp_path):
    suite = PAPERS["asdt"].suites["scenes"]
    plan = Plan(suite, Path("configs"), tmp_path, (3,), quick=False)
    assert [c.key for c in suite.main.columns] == MAIN_KEYS and suite.main.baseline == "rrm"
    dark = suite.ablations["dark"]
    assert [c.key for c in dark.columns] == [f"dark_{k}" for k in MAIN_KEYS] and dark.baseline == "dark_rrm"
    for key in MAIN_KEYS:
        normal = plan.config(suite.columns()[key], 3).model_dump()
        night = plan.config(suite.columns()[f"dark_{key}"], 3).model_dump()
        assert (normal["method"]["input"], night["method"]["input"]) == ("image", "dark")
        differs = {(section, k) for section in normal if isinstance(normal[section], dict)
                   for k in normal[section] if normal[section][k] != night[section][k]}
        differs |= {s for s in normal if not isinstance(normal[s], dict) and normal[s] != night[s]}
        assert differs <= {("method", "input"), "name", "output_dir"}, (key, differs)
        assert night["seed"] == normal["seed"]
