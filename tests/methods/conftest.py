"""`seam_scenes`: a tiny generated `scenes` benchmark and overrides that make the SEAM/PLDA scenes configs train in
seconds (tests/methods/test_seam.py, test_plda.py)."""

import pytest

from darkseg.data.scenes import ScenesConfig, generate_scenes

SCENES = dict(size=48, n_train=8, n_val=4, n_test=2, n_pairs_train=2, n_pairs_val=2, workers=1)


@pytest.fixture(scope="session")
def seam_scenes(tmp_path_factory) -> list[str]:
    root = tmp_path_factory.mktemp("scenes")
    generate_scenes(root, ScenesConfig(**SCENES), progress=False)
    return [f"data.root={root}", *(f"data.scenes.{k}={v}" for k, v in SCENES.items()),
            "data.augment.crop_size=48", "data.batch_size=4", "data.num_workers=0", "model.backbone.width=0.0625", "model.backbone.pretrained=null",
            "train.iterations=2", "train.val_every=0", "train.ckpt_every=0", "train.progress=false",
            "train.threads=1", "train.amp=off", "eval.inference.batch_size=4"]
