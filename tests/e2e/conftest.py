"""A tiny generated `scenes` benchmark and tiny-model config overrides shared by the end-to-end CLI tests."""

from pathlib import Path

import pytest

from darkseg.data.scenes import ScenesConfig, generate_scenes

SCENES = dict(size=48, n_train=24, n_val=6, n_test=6, n_pairs_train=2, n_pairs_val=2, workers=1)


@pytest.fixture(scope="session")
def tiny_scenes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scenes")
    generate_scenes(root, ScenesConfig(**SCENES), progress=False)
    return root


@pytest.fixture(scope="session")
def tiny(tiny_scenes) -> list[str]:
    """Overrides turning a scenes config into a seconds-long CPU run on the tiny benchmark."""
    return [f"data.root={tiny_scenes}", *(f"data.scenes.{k}={v}" for k, v in SCENES.items()),
            "data.augment.crop_size=48", "data.batch_size=4", "data.num_workers=0",
            "model.backbone.width=0.0625", "model.backbone.pretrained=null", "model.aspp_channels=8", "model.decoder_channels=8",
            "model.skip_channels=8", "train.iterations=3", "train.log_every=1", "train.val_every=2",
            "train.ckpt_every=2", "train.progress=false", "train.threads=1", "train.amp=off",
            "eval.inference.batch_size=4"]
