"""`darkseg pretrain`: the scenes backbone is trained once, exported alone, loaded by a recipe through
model.backbone.pretrained, reused while its key holds, and never replaced without --force."""

import json
from pathlib import Path

import pytest
import torch

from darkseg.cli import main
from darkseg.config import load_config
from darkseg.engine.pretrain import BACKBONE_FILE, KEY_FILE, ensure_backbone
from darkseg.errors import ConfigError
from darkseg.models.factory import build_segmenter
from darkseg.models.weights import read_weights

CONFIG = "configs/pretrain/scenes_pretrain_wideresnet38.yaml"
SEAM = "configs/plda/scenes_seam.yaml"
PRETRAIN_SCENES = dict(size=48, n_train=16, n_val=4, n_test=1, n_pairs_train=0, n_pairs_val=0, workers=1)


def _overrides(tmp_path: Path) -> list[str]:
    return [f"output_dir={tmp_path / 'pretrain'}", f"data.root={tmp_path / 'images'}",
            *(f"data.scenes.{k}={v}" for k, v in PRETRAIN_SCENES.items()),
            "data.augment.crop_size=48", "data.batch_size=4", "data.num_workers=0", "model.backbone.width=0.0625",
            "train.iterations=2", "train.val_every=0", "train.ckpt_every=0", "train.progress=false",
            "train.threads=1", "train.log_every=1"]


def test_pretrained_backbone_is_exported_loaded_reused_and_protected(tmp_path: Path, capsys) -> None:
    overrides = _overrides(tmp_path)
    assert main(["pretrain", CONFIG, *overrides]) == 0
    out = tmp_path / "pretrain" / BACKBONE_FILE
    assert f"{out}: backbone pretrained" in capsys.readouterr().out
    exported = read_weights(out)
    trained = read_weights(tmp_path / "pretrain" / "model_final.safetensors")
    assert exported and set(exported) == {k[len("backbone."):] for k in trained if k.startswith("backbone.")}
    assert all(torch.equal(v, trained[f"backbone.{k}"]) for k, v in exported.items())

    # a recipe with the same backbone loads it strictly through model.backbone.pretrained (what SEAM's uses)
    seam = load_config(SEAM, ["model.backbone.width=0.0625", f"model.backbone.pretrained={out}"])
    model = build_segmenter(seam.model, 9, seam.data.mean, seam.data.std)
    state = model.backbone.state_dict()
    assert all(torch.equal(state[k], v) for k, v in exported.items())

    # same config: reused, the file untouched; the images' scenes.json is part of the key
    stamp = out.stat().st_mtime_ns
    again = ensure_backbone(load_config(CONFIG, overrides))
    assert not again.trained and out.stat().st_mtime_ns == stamp

    # a renamed config is the same pretraining run; a cache keyed by another darkseg version is refused with a line
    # that names the key, not the images (which did not change)
    assert not ensure_backbone(load_config(CONFIG, [*overrides, "name=renamed"])).trained
    key_file = tmp_path / "pretrain" / KEY_FILE
    good = key_file.read_text()
    key_file.write_text(json.dumps({**json.loads(good), "key": "0" * 16}))
    with pytest.raises(ConfigError, match="made with the cache key"):
        ensure_backbone(load_config(CONFIG, overrides))
    key_file.write_text(good)

    # another config: refused with one line naming the key, unless --force (the old run is moved aside, kept)
    changed = [*overrides, "train.iterations=3"]
    with pytest.raises(ConfigError, match="train.iterations=2"):
        ensure_backbone(load_config(CONFIG, changed))
    assert main(["pretrain", CONFIG, *changed, "--force"]) == 0
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("pretrain.replaced-")]
    assert len(kept) == 1 and (kept[0] / BACKBONE_FILE).is_file()
    assert not torch.equal(read_weights(out)["conv1a.weight"], exported["conv1a.weight"])


def test_pretraining_needs_the_classification_method(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="method.name"):
        ensure_backbone(load_config(SEAM, _overrides(tmp_path)))
