"""`darkseg eval` with eval.inference_search: thresholds chosen on val, applied to test, never chosen on test."""

import json

import pytest

from darkseg.cli import main

TEACHER = "configs/dgkd_wlss/scenes_teacher.yaml"


def test_eval_chooses_on_val_and_refuses_the_test_split(tmp_path, tiny, capsys):
    run = [*tiny, f"output_dir={tmp_path / 'run'}"]
    assert main(["train", TEACHER, *run]) == 0
    grid = ["eval.inference_search.score_cuts=[0.1,0.5]", "eval.inference_search.bg_pows=[1.0,3.0]"]
    capsys.readouterr()
    assert main(["eval", TEACHER, *run, *grid, "--split", "test", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    chosen = result["inference"]
    assert chosen["selected_on"] == "val" and chosen["bg_pow"] in (1.0, 3.0)
    assert result["class_filter"] == chosen["class_filter"]
    fixed = ["eval.inference_search=null", f"eval.inference.class_filter={chosen['class_filter']}",
             f"eval.inference.bg_pow={chosen['bg_pow']}"]
    if chosen["score_cut"] is not None:
        fixed.append(f"eval.inference.score_cut={chosen['score_cut']}")
    assert main(["eval", TEACHER, *run, *fixed, "--split", "test", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["miou"] == pytest.approx(result["miou"], abs=1e-9)
    assert main(["eval", TEACHER, *run, *grid, "eval.inference_search.split=test", "--split", "test"]) != 0
    assert "is the test split" in capsys.readouterr().err
    # several test sets at once do not run the search: refused with one line rather than silently skipped
    assert main(["eval", TEACHER, *run, "--datasets", "dark_zurich_val"]) == 1
    assert "does not choose thresholds" in capsys.readouterr().err
