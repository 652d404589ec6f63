"""The scenes suites' pretrained start: `darkseg reproduce` pretrains the backbone before the columns that load it,
with the suite's weight-neutral overrides only, and reuses it on a rerun."""

from pathlib import Path

import yaml

from darkseg.reproduce.pretrained import SCENES_PRETRAIN, ensure_pretrained_start
from darkseg.reproduce.runner import Plan
from darkseg.reproduce.tables import Column, Suite, Table

SEAM = Path("configs/plda/scenes_seam.yaml").resolve()


def _configs(tmp_path: Path) -> tuple[Path, Path]:
    configs = tmp_path / "configs"
    (configs / "pretrain").mkdir(parents=True)
    pretrain = yaml.safe_load((Path("configs") / SCENES_PRETRAIN).read_text())
    pretrain["output_dir"] = str(tmp_path / "pretrain")
    pretrain["data"]["root"] = str(tmp_path / "images")
    pretrain["data"]["scenes"].update(size=48, n_train=8, n_val=2, n_test=1, workers=1)
    pretrain["data"].update(batch_size=4, num_workers=0)
    pretrain["data"]["augment"]["crop_size"] = 48
    pretrain["model"]["backbone"]["width"] = 0.0625
    pretrain["train"].update(iterations=2, val_every=0, ckpt_every=0, progress=False)
    (configs / SCENES_PRETRAIN).write_text(yaml.safe_dump(pretrain))
    backbone = tmp_path / "pretrain" / "backbone.safetensors"
    (configs / "user.yaml").write_text(yaml.safe_dump(
        {"base": str(SEAM), "model": {"backbone": {"width": 0.0625, "pretrained": str(backbone)}}}))
    (configs / "scratch.yaml").write_text(yaml.safe_dump({"base": str(SEAM)}))
    return configs, backbone


def _plan(configs: Path, tmp_path: Path, config: str) -> Plan:
    suite = Suite("t", Table("t", (Column("col", "column", config),)))
    return Plan(suite, configs, tmp_path / "out", (0,), False, ["train.threads=1", "train.iterations=99"])


def test_pretraining_runs_once_before_the_columns_that_load_it(tmp_path: Path, capsys) -> None:
    configs, backbone = _configs(tmp_path)
    ensure_pretrained_start(_plan(configs, tmp_path, "scratch.yaml"), ("col",))
    assert not backbone.exists() and capsys.readouterr().out == ""  # no column loads it: nothing trained

    plan = _plan(configs, tmp_path, "user.yaml")
    ensure_pretrained_start(plan, ("col",))
    assert backbone.is_file() and "pretrained in" in capsys.readouterr().out
    saved = yaml.safe_load((tmp_path / "pretrain" / "config.yaml").read_text())
    assert saved["train"]["iterations"] == 2 and saved["train"]["threads"] == 1  # the suite's weight-neutral keys only
    stamp = backbone.stat().st_mtime_ns
    ensure_pretrained_start(plan, ("col",))
    assert "reused" in capsys.readouterr().out and backbone.stat().st_mtime_ns == stamp
