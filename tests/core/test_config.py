"""Typed configs: YAML bases, overrides, one-line errors naming the key and the allowed values."""

from pathlib import Path

import pytest

from darkseg.config import load_config
from darkseg.errors import ConfigError

CONFIGS = sorted(p for p in Path("configs").rglob("*.yaml") if not p.name.startswith("_"))


@pytest.mark.parametrize("path", CONFIGS, ids=str)
def test_every_shipped_config_is_valid(path):
    cfg = load_config(path)
    assert cfg.name == path.stem or path.parent.name == "scenes"  # run folders are named after the file


def test_bases_merge_and_overrides_win(tmp_path):
    (tmp_path / "base.yaml").write_text("seed: 3\nmodel: {name: cam}\nmethod: {name: cam}\ntrain: {iterations: 5}\n")
    (tmp_path / "child.yaml").write_text("base: base.yaml\ntrain: {log_every: 7}\n")
    cfg = load_config(tmp_path / "child.yaml", ["train.iterations=9", "eval.inference.scales=[1, 0.5]"])
    assert (cfg.seed, cfg.train.iterations, cfg.train.log_every) == (3, 9, 7)
    assert cfg.eval.inference.scales == [1.0, 0.5] and cfg.train.amp == "off"
    assert load_config(tmp_path / "child.yaml", ["train.amp=off"]).train.amp == "off"  # YAML reads off as False


@pytest.mark.parametrize(
    "override, expected",
    [
        ("no.such.key=1", "unknown config key 'no'; allowed keys under the top level: name, seed"),
        ("train.optim.nmae=sgd", "unknown config key 'train.optim.nmae'; allowed keys under train.optim: name, lr"),
        ("model.backbone.widht=1", "allowed keys under model.backbone: name, width"),
        ("train.optim.name=adam", "config key 'train.optim.name': Input should be 'sgd' or 'adamw' (got 'adam')"),
        ("train.iterations=-3", "config key 'train.iterations'"),
        ("method.name=nope", "config key 'method'"),
        ("data.batch_size=many", "config key 'data.batch_size'"),
    ],
)
def test_bad_values_fail_with_one_line(override, expected):
    with pytest.raises(ConfigError) as err:
        load_config("configs/dgkd_wlss/scenes_teacher.yaml", [override])
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: line \d+ invalid YAML"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "loop.yaml").write_text("base: loop.yaml\n")
    with pytest.raises(ConfigError, match="circular"):
        load_config(tmp_path / "loop.yaml")


def test_disabled_distillation_level_and_val_split_guard(tmp_path):
    cfg = load_config("configs/dgkd_wlss/ablations/scenes_dgkd_mask.yaml")
    assert set(cfg.method.levels) == {"mask"}
    from darkseg.engine.runner import train

    cfg = load_config("configs/dgkd_wlss/scenes_teacher.yaml", ["data.val_split=test", f"output_dir={tmp_path}"])
    with pytest.raises(ConfigError, match="must not use the test split"):
        train(cfg)
