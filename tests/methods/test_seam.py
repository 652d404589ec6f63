"""SEAM losses against independent computations; the method's step; training and CAM sweep from the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from darkseg.cli import main
from darkseg.config import ExperimentConfig
from darkseg.errors import ConfigError
from darkseg.methods.base import DatasetInfo
from darkseg.methods.seam import (
    SEAMMethod,
    cross_regularisation,
    max_norm,
    max_onehot,
    min_pooling_loss,
    second_view,
    with_background,
)

INFO = DatasetInfo(("background", "a", "b", "c"), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
TINY_MODEL = {"name": "seam", "pcm_channels": [8, 8], "pcm_dim": 16,
              "backbone": {"name": "wideresnet38", "width": 0.0625, "blocks": [1, 1, 1, 1, 1, 1],
                           "freeze_bn": False, "frozen_stages": []}}


def test_max_norm_reference() -> None:
    x = torch.tensor([[[[-1.0, 2.0], [4.0, 1.0]]]])
    # ReLU -> [0, 2, 4, 1]; min 0, max 4: relu(p - 0 - 1e-5) / (4 + 1e-5)
    expected = torch.tensor([0.0, 2 - 1e-5, 4 - 1e-5, 1 - 1e-5]) / (4 + 1e-5)
    assert torch.allclose(max_norm(x).flatten(), expected)


def test_background_and_max_onehot() -> None:
    cam = torch.tensor([[[[9.0]], [[0.2]], [[0.7]], [[0.7]]]])  # (1, 4, 1, 1)
    assert torch.allclose(with_background(cam)[0, :, 0, 0], torch.tensor([0.3, 0.2, 0.7, 0.7]))
    assert torch.allclose(max_onehot(cam)[0, :, 0, 0], torch.tensor([9.0, 0.0, 0.7, 0.7]))  # ties both kept


def test_min_pooling_and_ecr_match_sorting() -> None:
    torch.manual_seed(0)
    cam = torch.randn(2, 3, 4, 6)
    pix = cam.amax(1).flatten(1).sort(dim=1).values[:, :6]  # lowest 25 % of 24 pixels
    assert torch.allclose(min_pooling_loss(cam), F.relu(pix).sum() / 12)
    other, rv = torch.rand(2, 4, 5, 5), torch.rand(2, 4, 5, 5)
    diff = (max_onehot(other) - rv).abs().flatten(1).sort(dim=1, descending=True).values[:, :20]  # 20 % of 100
    assert torch.allclose(cross_regularisation(other, rv, 0.2), diff.mean())


def test_second_view_size() -> None:
    assert second_view(torch.rand(1, 3, 96, 50), 0.3).shape[-2:] == (28, 15)


def _cfg(**method) -> ExperimentConfig:
    return ExperimentConfig.model_validate({"model": TINY_MODEL, "method": {"name": "seam", **method},
                                            "train": {"iterations": 10}})


def test_seam_step_losses_and_gradients() -> None:
    torch.manual_seed(0)
    m = SEAMMethod(_cfg(), INFO)
    m.nets.train()
    batch = {"image": torch.rand(2, 3, 48, 48), "labels": torch.tensor([[1.0, 0, 1], [0, 1, 0]])}
    out = m.training_step("main", batch, 0, {})
    assert set(out.losses) == {"cls", "min_pool", "er", "ecr"}
    sum(out.losses.values()).backward()
    model = m.nets["model"]
    backbone = model.backbone
    for p in (model.classifier.weight, model.pcm.theta.weight, model.pcm_b5.weight, backbone.b7.conv_branch1.weight):
        assert p.grad is not None and p.grad.abs().sum() > 0
    # the background channel of the CAM head gets no gradient from SEAM's losses (only weight decay)
    assert model.classifier.weight.grad[0].abs().sum() == 0


def test_seam_needs_seam_model() -> None:
    cfg = ExperimentConfig.model_validate({"model": {"name": "cam"}, "method": {"name": "seam"}})
    with pytest.raises(ConfigError, match="model 'seam'"):
        SEAMMethod(cfg, INFO, load_external=False)


SEAM_CONFIGS = sorted(Path("configs/plda").glob("scenes_seam*.yaml"))


@pytest.mark.parametrize("config", SEAM_CONFIGS, ids=lambda p: p.stem)
def test_scenes_config_trains(config, seam_scenes, tmp_path) -> None:
    assert main(["train", str(config), *seam_scenes, f"output_dir={tmp_path}"]) == 0
    assert (tmp_path / "model_final.safetensors").is_file()


def test_cam_sweep_of_trained_seam(seam_scenes, tmp_path, capsys) -> None:
    config = "configs/plda/scenes_seam.yaml"
    assert main(["train", config, *seam_scenes, f"output_dir={tmp_path}"]) == 0
    capsys.readouterr()
    assert main(["cam", config, *seam_scenes, f"output_dir={tmp_path}", "--scales", "0.5,1,1.5,2", "--minmax",
                 "--thresholds", "0.1:0.5:0.2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result["miou_per_threshold"]) == {"0.10", "0.30", "0.50"}
    assert 0.0 <= result["best_miou"] <= 100.0
    cams = sorted((tmp_path / "cam" / "train" / "cams").glob("*.npy"))
    assert len(cams) == 8  # the tiny train split (conftest.py)
    assert main(["cam", config, *seam_scenes, f"output_dir={tmp_path}", "--scales", "0,1"]) == 1


class _ImageAsMasks(torch.nn.Module):
    """Stub segmenter whose masks are its input image (channel 0 = background, 1-2 = two classes)."""

    def forward(self, image: torch.Tensor) -> dict:
        return {"masks": image}


def test_cam_protocol_multiscale_flip_minmax() -> None:
    from darkseg.engine.cam_sweep import class_maps

    torch.manual_seed(0)
    image = torch.rand(1, 3, 8, 12)
    fg = class_maps(_ImageAsMasks(), image, torch.tensor([1.0, 1.0]), None, flip=True, scales=(1.0, 0.5), minmax=True)
    # independent: sum over scales and flips of the resized maps, then SEAM's min-max per class
    total = torch.zeros(2, 8, 12)
    for s in (1.0, 0.5):
        x = image if s == 1.0 else F.interpolate(image, size=(4, 6), mode="bilinear", align_corners=False)
        for flip in (False, True):
            y = x.flip(-1) if flip else x
            y = F.interpolate(y, size=(8, 12), mode="bilinear", align_corners=False)
            total += (y.flip(-1) if flip else y)[0, 1:]
    lo, hi = total.amin((1, 2), keepdim=True), total.amax((1, 2), keepdim=True)
    assert torch.allclose(fg, F.relu(total - lo - 1e-5) / (hi - lo + 1e-5), atol=1e-6)
    absent = class_maps(_ImageAsMasks(), image, torch.tensor([0.0, 1.0]), None, scales=(1.0,), minmax=True)
    assert absent[0].abs().sum() == 0 and absent[1].max() == pytest.approx(1.0, abs=1e-4)
