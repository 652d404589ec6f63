"""Fully supervised segmenters: reference parameter counts, output contract, auxiliary heads, ResNet variants."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from darkseg.config import load_config
from darkseg.engine.profile import profile
from darkseg.engine.runner import build_method
from darkseg.models.backbones import ResNet
from darkseg.models.factory import (
    DeepLabV1Config,
    DeepLabV2Config,
    PSPNetConfig,
    RefineNetConfig,
    ResNetConfig,
    WideResNet38Config,
    build_segmenter,
)
from darkseg.models.segmenters import IMAGENET_MEAN, IMAGENET_STD

#: night-uda.md §3, measured on DANNet's code, 19 classes
REFERENCE_PARAMS = {"deeplabv2": 44.60e6, "pspnet": 70.43e6, "refinenet": 118.05e6}
TINY_RESNET = dict(name="resnet", depth=50, width=0.125, blocks=(1, 1, 1, 1))


def build(cfg, num_classes: int = 5):  # noqa: ANN001, ANN201
    return build_segmenter(cfg, num_classes, IMAGENET_MEAN, IMAGENET_STD)


@pytest.mark.parametrize("cfg", [DeepLabV2Config(aux_head=True), PSPNetConfig(), RefineNetConfig()],
                         ids=lambda c: c.name)
def test_reference_parameter_counts(cfg) -> None:  # noqa: ANN001
    with torch.device("meta"):
        model = build(cfg, 19)
    n = sum(p.numel() for p in model.parameters())
    assert abs(n / REFERENCE_PARAMS[cfg.name] - 1) < 1e-3, n


TINY = {
    "deeplabv1": DeepLabV1Config(backbone=WideResNet38Config(width=0.125, blocks=(1, 1, 1, 1, 1, 1)),
                                 fc_channels=16, rate=2),
    "deeplabv2": DeepLabV2Config(backbone=ResNetConfig(**TINY_RESNET, variant="caffe"), rates=(1, 2), aux_head=True),
    "pspnet": PSPNetConfig(backbone=ResNetConfig(**TINY_RESNET, variant="deepstem"), channels=16),
    "refinenet": RefineNetConfig(backbone=ResNetConfig(**TINY_RESNET, output_stride=32), top_channels=16,
                                 channels=8),
}


@pytest.mark.parametrize("name", list(TINY))
def test_output_contract(name: str) -> None:
    torch.manual_seed(0)
    model = build(TINY[name]).eval()
    image = torch.rand(2, 3, 64, 64)
    out = model(image)
    stride = model.mask_stride
    assert stride == {"deeplabv1": 8, "deeplabv2": 8, "pspnet": 8, "refinenet": 4}[name]
    side = out["logits"].shape[-1]
    assert abs(side - 64 / stride) <= 1
    assert out["logits"].shape[:2] == (2, 5) and out["masks"].shape == out["logits"].shape
    torch.testing.assert_close(out["masks"], out["logits"].softmax(1))
    p_max = out["masks"][:, 1:].amax(dim=(2, 3))
    torch.testing.assert_close(torch.sigmoid(out["cls"]), p_max, atol=1e-5, rtol=1e-4)
    assert set(out["feats"]) == {"layer3", "layer6"} and "aux_logits" not in out
    for key, ch in model.feature_channels.items():
        assert out["feats"][key].shape[1] == ch


@pytest.mark.parametrize("name", ["deeplabv2", "pspnet"])
def test_aux_head_in_training_only(name: str) -> None:
    model = build(TINY[name]).train()
    out = model(torch.rand(2, 3, 64, 64))
    assert out["aux_logits"].shape == out["logits"].shape
    out["aux_logits"].sum().backward()
    assert model.aux_classifier is not None
    assert all(p.grad is not None for p in model.aux_classifier.parameters())
    assert "aux_logits" not in model.eval()(torch.rand(2, 3, 64, 64))


def test_resnet_variants_strides_and_frozen_block_bn() -> None:
    caffe = ResNet(50, 8, width=0.125, blocks=(1, 1, 1, 1), variant="caffe", freeze_bn=False,
                   freeze_block_bn_affine=True)
    assert caffe.layer2[0].conv1.stride == (2, 2) and caffe.layer2[0].conv2.stride == (1, 1)
    assert caffe.layer3[0].conv2.dilation == (2, 2)  # every block of a dilated stage at the stage dilation
    assert not caffe.layer1[0].bn1.weight.requires_grad and caffe.bn1.weight.requires_grad
    before = caffe.layer1[0].bn1.running_mean.clone()
    caffe.train()(torch.rand(2, 3, 64, 64))
    assert not torch.equal(before, caffe.layer1[0].bn1.running_mean)  # statistics still update
    tv = ResNet(50, 8, width=0.125, blocks=(1, 1, 1, 1))
    assert tv.layer2[0].conv2.stride == (2, 2) and tv.layer3[0].conv2.dilation == (1, 1)
    deep = ResNet(101, 8, variant="deepstem", width=0.125, blocks=(1, 1, 1, 1)).eval()
    assert deep.conv3.out_channels == 16 and deep.layer1[0].conv1.in_channels == 16
    # 512 input: ceil-mode max-pool gives 65×65 at stride 8 (night-uda.md §3), torchvision 64×64
    with torch.no_grad():
        assert deep(torch.rand(1, 3, 512, 512))["layer4"].shape[-1] == 65
        assert tv.eval()(torch.rand(1, 3, 512, 512))["layer4"].shape[-1] == 64


def test_profile_reports_reference_deploy_params() -> None:
    """`darkseg profile` of a supervised recipe (one of the three: each costs seconds; the counts of all three are
    checked above on the same builder)."""
    report = profile(load_config("configs/segmenters/deeplabv2_r101_cityscapes.yaml"), 64)
    assert abs(report.deploy_params / REFERENCE_PARAMS["deeplabv2"] - 1) < 1e-3
    assert report.params == report.deploy_params  # the supervised method trains exactly the deployed network


@pytest.mark.parametrize("path", sorted(p.name for p in Path("configs/segmenters").glob("[!_]*.yaml")))
def test_recipes_validate_and_build(path: str) -> None:
    cfg = load_config(Path("configs/segmenters") / path)
    with torch.device("meta"):
        method = build_method(cfg, load_external=False)
    assert method.train_views() == ("image", "mask")


@pytest.mark.parametrize("path", sorted(p.name for p in Path("configs/segmenters").glob("scenes_*.yaml")))
def test_small_recipes_start_with_moderate_logits(path: str) -> None:
    """A freshly initialised CPU recipe starts with logits of order 1 (an unnormalised RefineNet path with Kaiming
    weights started at ~1e6, and its first cross-entropy at ~1e4)."""
    cfg = load_config(Path("configs/segmenters") / path)
    torch.manual_seed(0)
    model = build_segmenter(cfg.model, 9, IMAGENET_MEAN, IMAGENET_STD).eval()
    with torch.no_grad():
        logits = model(torch.rand(2, 3, 96, 96))["logits"]
    assert logits.abs().max() < 50
