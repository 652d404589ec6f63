"""Backbones: WideResNet-38 layer table, taps/strides, freezing, dropout, fusion hooks; ResNet dilation and names."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from darkseg.errors import ConfigError
from darkseg.models.backbones import ResNet, WideResNet38

TINY = dict(width=0.125, blocks=(1, 1, 1, 1, 1, 1))


def test_wrn38_full_size_params_and_layer_table() -> None:
    """ssss.md §1: trunk 105,070,912 params; channels/strides of the layer table; b5 first conv d=1, then d=2."""
    with torch.device("meta"):
        m = WideResNet38()
    assert sum(p.numel() for p in m.parameters()) == 105_070_912
    assert m.channels == {
        "conv1a": 64, "b2": 128, "b3": 256, "b4": 512, "b5": 1024, "b6": 2048, "b7": 4096, "conv6": 4096
    }
    assert m.strides == {"conv1a": 1, "b2": 2, "b3": 4, "b4": 8, "b5": 8, "b6": 8, "b7": 8, "conv6": 8}
    names = [n for n, _ in m.named_children()]
    assert names[:4] == ["conv1a", "b2", "b2_1", "b2_2"] and "b4_5" in names and "bn7" in names
    assert m.b5.conv_branch2a.dilation == (1, 1) and m.b5.conv_branch2b1.dilation == (2, 2)
    assert m.b5_1.conv_branch2a.dilation == (2, 2)
    assert m.b6.conv_branch2b1.dilation == (4, 4) and m.b7.conv_branch2b1.dilation == (4, 4)
    assert (m.b6.conv_branch2a.out_channels, m.b6.conv_branch2b1.out_channels) == (512, 1024)
    assert (m.b6.dropout_2b1.p, m.b7.dropout_2b2.p) == (0.3, 0.5)
    assert m.b2_1.conv_branch1 is None and m.b2.conv_branch1 is not None and m.b5.conv_branch1 is not None


@pytest.mark.parametrize("size", [96, 97])
def test_wrn38_taps_shapes(size: int) -> None:
    m = WideResNet38(**TINY).eval()
    with torch.no_grad():
        taps = m(torch.rand(1, 3, size, size))
    assert set(taps) == {"b2", "b3", "b4", "b5", "b6", "b7", "conv6"}
    for name, t in taps.items():
        s = m.strides[name]
        assert t.shape == (1, m.channels[name], -(-size // s), -(-size // s)), name
    assert (taps["conv6"] >= 0).all()  # ReLU(bn7)


def test_wrn38_freeze_bn_and_frozen_stages_survive_train() -> None:
    m = WideResNet38(**TINY, freeze_bn=True, frozen_stages=("conv1a", "b2"))
    assert m.train() is m and m.eval() is m
    m.train()
    bns = [mod for mod in m.modules() if isinstance(mod, nn.BatchNorm2d)]
    assert bns and all(not bn.training for bn in bns)
    assert all(not p.requires_grad for bn in bns for p in bn.parameters())
    assert not m.conv1a.weight.requires_grad and not m.b2.conv_branch2a.weight.requires_grad
    assert m.b3.conv_branch2a.weight.requires_grad and m.b7.conv_branch2b2.weight.requires_grad
    before = m.b4.bn_branch2a.running_mean.clone()
    m(torch.rand(2, 3, 32, 32))
    assert torch.equal(before, m.b4.bn_branch2a.running_mean)


def test_wrn38_trainable_bn_and_frozen_stage_bn() -> None:
    m = WideResNet38(**TINY, freeze_bn=False, frozen_stages=("b2",)).train()
    assert m.b3.bn_branch2a.training and m.b3.bn_branch2a.weight.requires_grad
    assert not m.b2.bn_branch2a.training and not m.b2.bn_branch2a.weight.requires_grad
    with pytest.raises(ConfigError, match="frozen_stages"):
        WideResNet38(**TINY, frozen_stages=("b9",))


def test_wrn38_dropout_active_in_train_only() -> None:
    m = WideResNet38(**TINY)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert not torch.equal(m.train()(x)["b7"], m(x)["b7"])
        m.eval()
        assert torch.equal(m(x)["b7"], m(x)["b7"])


class AddPrior(nn.Module):
    """A stand-in fusion: x + mean(prior)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.calls = 0

    def forward(self, x: Tensor, prior: Tensor | None) -> Tensor:
        self.calls += 1
        assert prior is not None
        return x + self.scale * prior.mean()


def test_wrn38_fusions_record_pre_and_post_fusion_taps() -> None:
    m = WideResNet38(**TINY, fusions={"b2": AddPrior(), "b3": AddPrior()}).eval()
    x, prior = torch.rand(1, 3, 32, 32), torch.full((1, 4, 8, 8), 2.0)
    with torch.no_grad():
        taps = m(x, prior)
        plain = WideResNet38(**TINY).eval()
        plain.load_state_dict(m.state_dict(), strict=False)
        ref = plain(x)
    assert set(taps) >= {"b2_fused", "b3_fused"} and "b4_fused" not in taps
    assert torch.allclose(taps["b2_fused"], taps["b2"] + 2.0)
    assert torch.allclose(taps["b2"], ref["b2"]) and not torch.allclose(taps["b3"], ref["b3"])
    assert m.fusions["b2"].calls == 1
    assert m.pretrained_children()[0] == "conv1a" and "fusions" not in m.pretrained_children()
    assert m.fusions["b2"].scale.requires_grad  # fusions are not frozen by freeze_bn / frozen stages
    with pytest.raises(ConfigError, match="fusions"):
        m.set_fusions({"layer9": AddPrior()})


@pytest.mark.parametrize("depth", [18, 50])
@pytest.mark.parametrize("output_stride", [8, 16, 32])
def test_resnet_output_stride(depth: int, output_stride: int) -> None:
    m = ResNet(depth, output_stride, width=0.25, blocks=(1, 1, 1, 1)).eval()
    with torch.no_grad():
        taps = m(torch.rand(1, 3, 65, 65))
    assert m.strides["layer1"] == 4 and m.strides["layer4"] == output_stride
    for name, t in taps.items():
        assert t.shape[1] == m.channels[name]
        assert t.shape[-1] == -(-65 // m.strides[name]), name


def test_resnet_torchvision_names_and_params() -> None:
    with torch.device("meta"):
        r50, r18 = ResNet(50, 32), ResNet(18, 32)
    # torchvision totals minus the 1000-way fc (2048*1000+1000 and 512*1000+1000)
    assert sum(p.numel() for p in r50.parameters()) == 25_557_032 - 2_049_000
    assert sum(p.numel() for p in r18.parameters()) == 11_689_512 - 513_000
    keys = set(r50.state_dict())
    assert {"conv1.weight", "bn1.running_var", "layer1.0.conv3.weight", "layer1.0.downsample.0.weight",
            "layer4.2.bn3.bias", "layer1.0.bn1.num_batches_tracked"} <= keys
    assert "layer1.1.downsample.0.weight" not in keys
    m = ResNet(18, 8, width=0.25, blocks=(1, 1, 1, 1), frozen_stages=("stem", "layer1")).train()
    assert not m.conv1.weight.requires_grad and not m.layer1[0].conv1.weight.requires_grad
    assert m.layer2[0].conv1.weight.requires_grad and not m.layer2[0].bn1.training
