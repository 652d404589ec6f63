"""Loading the ResNet-101 weight files people have: a torchvision ImageNet state dict and the converted Caffe
DeepLab ResNet-101 (AdaptSegNet/DANNet ``Scale.*`` names); key reports; a wrong file is one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from darkseg.errors import CheckpointError
from darkseg.models import build_segmenter, load_pretrained_backbone
from darkseg.models.factory import DeepLabV2Config, ResNetConfig
from darkseg.models.backbones import ResNet, WideResNet38
from darkseg.models.segmenters import IMAGENET_MEAN, IMAGENET_STD


def _bn(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {f"{prefix}.{p}": (c,) for p in ("weight", "bias", "running_mean",
                                                                             "running_var")}
    shapes[f"{prefix}.num_batches_tracked"] = ()
    return shapes


def resnet101_layout(num_fc: int = 1000) -> dict[str, tuple[int, ...]]:
    """Key -> shape of torchvision's resnet101 state dict, written out from the architecture (3, 4, 23, 3)."""
    shapes: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 7, 7), **_bn("bn1", 64)}
    cin = 64
    for i, (n, w) in enumerate(zip((3, 4, 23, 3), (64, 128, 256, 512)), start=1):
        for k in range(n):
            p = f"layer{i}.{k}"
            shapes.update({f"{p}.conv1.weight": (w, cin, 1, 1), **_bn(f"{p}.bn1", w),
                           f"{p}.conv2.weight": (w, w, 3, 3), **_bn(f"{p}.bn2", w),
                           f"{p}.conv3.weight": (4 * w, w, 1, 1), **_bn(f"{p}.bn3", 4 * w)})
            if k == 0:
                shapes.update({f"{p}.downsample.0.weight": (4 * w, cin, 1, 1), **_bn(f"{p}.downsample.1", 4 * w)})
            cin = 4 * w
    shapes.update({"fc.weight": (num_fc, 2048), "fc.bias": (num_fc,)})
    return shapes


def random_state(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {k: torch.tensor(7) if not s else torch.rand(s, generator=g) for k, s in shapes.items()}


def test_torchvision_resnet101_state_dict(tmp_path: Path) -> None:
    state = random_state(resnet101_layout())
    torch.save(state, tmp_path / "resnet101-5d3b4d8f.pth")
    backbone = ResNet(101, 8, variant="torchvision")
    report = load_pretrained_backbone(backbone, tmp_path / "resnet101-5d3b4d8f.pth")
    assert report.complete and report.dropped == ["fc.weight", "fc.bias"] and not report.converted
    assert len(report.loaded) == len([k for k in state if not k.startswith("fc.") and "num_batches" not in k])
    assert torch.equal(backbone.layer3[22].conv2.weight, state["layer3.22.conv2.weight"])
    assert torch.equal(backbone.layer4[0].downsample[1].running_var, state["layer4.0.downsample.1.running_var"])


def test_caffe_deeplab_resnet101_file_into_deeplabv2(tmp_path: Path) -> None:
    state = {f"Scale.{k}": v for k, v in random_state(resnet101_layout()).items() if not k.startswith("fc.")}
    for i, r in enumerate((6, 12, 18, 24)):  # the file's VOC classifier (21 classes), not backbone weights
        state[f"Scale.layer5.conv2d_list.{i}.weight"] = torch.rand(21, 2048, 3, 3)
        state[f"Scale.layer5.conv2d_list.{i}.bias"] = torch.rand(21)
    torch.save(state, tmp_path / "DeepLab_resnet_pretrained_init-f81d91e8.pth")
    cfg = DeepLabV2Config(
        backbone=ResNetConfig(depth=101, variant="caffe", freeze_bn=False, freeze_block_bn_affine=True,
                              pretrained=tmp_path / "DeepLab_resnet_pretrained_init-f81d91e8.pth"),
        aux_head=True,
    )
    model = build_segmenter(cfg, 19, IMAGENET_MEAN, IMAGENET_STD)
    assert torch.equal(model.backbone.layer2[0].conv1.weight, state["Scale.layer2.0.conv1.weight"])
    assert torch.equal(model.backbone.bn1.bias, state["Scale.bn1.bias"])
    report = load_pretrained_backbone(model.backbone, cfg.backbone.pretrained)
    assert report.complete and len(report.dropped) == 8
    assert len(report.converted) == len(state) - 8  # every backbone key renamed (``Scale.`` removed)


def test_wrong_file_is_one_line_with_key_report(tmp_path: Path) -> None:
    torch.save(WideResNet38(width=0.125, blocks=(1, 1, 1, 1, 1, 1)).state_dict(), tmp_path / "wrn.pth")
    with pytest.raises(CheckpointError) as err:
        load_pretrained_backbone(ResNet(101, 8), tmp_path / "wrn.pth")
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{tmp_path / 'wrn.pth'}: nothing in the file fits ResNet")
    report_file = Path(message.split("key list in ", 1)[1].split(")", 1)[0])
    assert "unexpected: conv1a.weight" in report_file.read_text()
    assert "missing: layer3.22.conv3.weight" in report_file.read_text()
    r50 = random_state({k: s for k, s in resnet101_layout().items() if not k.startswith("layer3.2")})
    torch.save(r50, tmp_path / "short.pth")  # a truncated ResNet: strict load refuses, in one line
    with pytest.raises(CheckpointError, match=r"short\.pth: does not fit ResNet: \d+ loaded; .* missing .*key list"
                       ) as err:
        load_pretrained_backbone(ResNet(101, 8), tmp_path / "short.pth")
    assert "\n" not in str(err.value)
