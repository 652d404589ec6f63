"""Every scenes ablation config (Tables 2(a), 2(b), 2(c), 8, 9) and the faithful variant train from the CLI."""

import shutil
from pathlib import Path

import pytest

from darkseg.cli import main

CONFIGS = sorted(Path("configs/dgkd_wlss/ablations").glob("scenes_*.yaml")) + [
    Path("configs/dgkd_wlss/scenes_dgkd_faithful.yaml")
]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, tiny) -> Path:
    run = tmp_path_factory.mktemp("teacher")
    assert main(["train", "configs/dgkd_wlss/scenes_teacher.yaml", *tiny, f"output_dir={run}", "train.iterations=1",
                 "train.val_every=0"]) == 0
    return run / "model_final.safetensors"


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_ablation_config_trains(config, tmp_path, tiny, tiny_scenes, teacher):
    depth_dir = next((o.split("=", 1)[1] for o in _data_overrides(config)), None)
    if depth_dir and not (tiny_scenes / depth_dir).exists():
        # Stand-in for the maps `darkseg depth` writes (tested in tests/depth): the benchmark's true depth.
        shutil.copytree(tiny_scenes / "depth", tiny_scenes / depth_dir)
    assert main(["train", str(config), *tiny, f"output_dir={tmp_path}", f"method.teacher.weights={teacher}",
                 "train.iterations=2", "train.val_every=0"]) == 0
    assert (tmp_path / "model_final.safetensors").is_file()


def _data_overrides(config: Path) -> list[str]:
    from darkseg.config import load_config

    cfg = load_config(config)
    return [f"depth_dir={cfg.data.depth_dir}"] if cfg.data.depth_dir not in (None, "depth") else []
