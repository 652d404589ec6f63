"""Runtime defaults: CPU threads per process."""

import os

from darkseg.engine.config import TrainConfig
from darkseg.engine.runner import resolve_threads


def test_threads_default_to_a_few_per_process(monkeypatch):
    assert TrainConfig().threads == "auto"
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert resolve_threads("auto") == 4  # not torch's default of every core: a busy machine is the usual case
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "32")
    assert resolve_threads("auto") == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert resolve_threads("auto") == 1
    assert resolve_threads(3) == 3


def test_a_renamed_recipe_or_another_validation_schedule_is_the_same_run_but_a_key_that_changes_weights_is_not():
    from pathlib import Path

    from darkseg.config import load_config
    from darkseg.engine.runner import config_diff

    path = Path(__file__).parents[2] / "configs" / "dgkd_wlss" / "scenes_student.yaml"
    cfg = load_config(path)
    assert config_diff(cfg, cfg.model_copy(update={"name": "scenes_student_renamed"})) == []
    assert config_diff(cfg, load_config(path, ["train.val_every=7"])) == []  # see test_validation_never_changes_...
    assert config_diff(cfg, load_config(path, ["train.threads=1", "output_dir=elsewhere"])) == []
    assert config_diff(cfg, load_config(path, ["train.iterations=10"])) == [("train.iterations", 900, 10)]
