"""DGF2 building blocks: official parameter/MAC counts, the fusion formula, lambda, gradients, config."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from darkseg.errors import ConfigError
from darkseg.models.ops.dgf2 import (
    DepthPriorExtractor,
    DGF2Block,
    DGF2Config,
    DGF2Fusion,
    SFTLayer,
    build_dgf2,
)

STAGES = {"b2": 128, "b3": 256, "b4": 512}
SIZES_321 = {"b2": 161, "b3": 81, "b4": 41}


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def macs(fn) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn()
    return counter.get_total_flops() // 2


def test_official_parameter_counts() -> None:
    assert n_params(DepthPriorExtractor()) == 74_528
    assert [n_params(SFTLayer(64, c)) for c in (128, 256, 512)] == [24_960, 41_600, 74_880]
    assert n_params(DGF2Fusion()) == 0
    prior_net, blocks = build_dgf2(DGF2Config(), STAGES)
    assert list(blocks) == ["b2", "b3", "b4"]
    assert n_params(prior_net) + n_params(blocks) == 215_968
    _, sft_only = build_dgf2(DGF2Config(mode="sft"), STAGES)
    assert n_params(sft_only) == n_params(blocks)


def test_macs_at_321_match_the_reference() -> None:
    with torch.device("meta"):  # shapes and FLOPs only, no arithmetic
        prior_net, blocks = build_dgf2(DGF2Config(), STAGES)
        depth = torch.rand(1, 1, 321, 321)
        prior = prior_net(depth)
    assert prior.shape == (1, 64, 79, 79)
    cond = macs(lambda: prior_net(depth))
    # 3x3 3->8 at 319^2, 4x4/4 8->128 at 79^2, 3x 1x1 128->128, 1x1 128->64 (biases not counted)
    assert cond == 319**2 * 8 * 27 + 79**2 * 128 * (8 * 16 + 3 * 128 + 64)
    sft = {}
    for name, c in STAGES.items():
        x = torch.randn(1, c, SIZES_321[name], SIZES_321[name], device="meta")
        sft[name] = macs(lambda: blocks[name](x, prior))
        assert sft[name] == SIZES_321[name] ** 2 * 2 * (64 * 64 + 64 * c)
    gmac = [round(v / 1e9, 2) for v in (cond, sft["b2"], sft["b3"], sft["b4"])]
    assert gmac == [0.48, 0.64, 0.27, 0.12]
    assert round((cond + sum(sft.values())) / 1e9, 2) == 1.51


def test_prior_extractor_normalises_replicated_depth() -> None:
    net = DepthPriorExtractor()
    depth = torch.rand(2, 1, 24, 20)
    rgb = (depth.expand(-1, 3, -1, -1) - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]
    ).view(1, 3, 1, 1)
    torch.testing.assert_close(net(depth), net.net(rgb))
    assert net(depth).shape == (2, 64, 5, 4)
    one = DepthPriorExtractor(in_channels=1)
    assert n_params(one) == 74_528 - 2 * 8 * 9 and one(depth).shape == (2, 64, 5, 4)


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_fusion_formula_against_independent_computation() -> None:
    gen = torch.Generator().manual_seed(0)
    f_d, f_dbar = torch.randn(2, 3, 4, 5, generator=gen, dtype=torch.float64) * 3
    lam = 0.4
    out = DGF2Fusion(lam)(f_d, f_dbar)
    expected = torch.empty_like(f_d)
    for i, (a, b) in enumerate(zip(f_d.flatten().tolist(), f_dbar.flatten().tolist())):
        att = lam * (1 - sigmoid(a)) * (1 - sigmoid(b)) + sigmoid(a) * sigmoid(b)
        expected.view(-1)[i] = b + att * (a + b)
    torch.testing.assert_close(out, expected)


def test_lambda_weights_the_jointly_inactive_regions() -> None:
    neg = torch.full((1, 1, 2, 2), -30.0)
    pos = torch.full((1, 1, 2, 2), 30.0)
    for lam in (0.4, 0.5, 0.6):
        fusion = DGF2Fusion(lam)
        # both inactive: A -> lam; both active: A -> 1 whatever lam
        torch.testing.assert_close(fusion(neg, neg), neg + lam * (neg + neg))
        torch.testing.assert_close(fusion(pos, pos), pos + (pos + pos))
    x, y = torch.randn(2, 4, 3, 3, generator=torch.Generator().manual_seed(1))
    a, b = DGF2Fusion(0.4)(x, y), DGF2Fusion(0.6)(x, y)
    torch.testing.assert_close(b - a, 0.2 * (1 - x.sigmoid()) * (1 - y.sigmoid()) * (x + y))


def test_sft_is_identity_with_zero_last_convs_and_resizes_the_prior() -> None:
    sft = SFTLayer(8, 16)
    for branch in (sft.gamma, sft.beta):
        nn.init.zeros_(branch[-1].weight)
        nn.init.zeros_(branch[-1].bias)
    x = torch.randn(2, 16, 11, 7)
    torch.testing.assert_close(sft(x, torch.randn(2, 8, 5, 5)), x)
    block = DGF2Block(16, 8, mode="sft")
    block.sft = sft
    torch.testing.assert_close(block(x, torch.randn(2, 8, 3, 3)), x)
    nn.init.constant_(sft.beta[-1].bias, 1.0)
    torch.testing.assert_close(sft(x, torch.randn(2, 8, 5, 5)), x + 1)


def test_modes_and_gradients_reach_the_prior_extractor() -> None:
    prior_net, blocks = build_dgf2(DGF2Config(stages=["b3"], lam=0.6), STAGES)
    assert list(blocks) == ["b3"] and blocks["b3"].fusion.lam == 0.6
    x = torch.randn(2, 256, 9, 9, requires_grad=True)
    prior = prior_net(torch.rand(2, 1, 37, 37))
    out = blocks["b3"](x, prior)
    sft_out = blocks["b3"].sft(x, prior)
    torch.testing.assert_close(out, DGF2Fusion(0.6)(x, sft_out))
    out.square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for p in prior_net.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="b9"):
        build_dgf2(DGF2Config(stages=["b3", "b9"]), STAGES)
    for bad in ({"stages": []}, {"stages": ["b3", "b3"]}, {"lam": 1.5}, {"mode": "film"}, {"extra": 1}):
        with pytest.raises(ValueError):
            DGF2Config(**bad)
