"""Noise-prediction network: official parameter counts, structure, timestep handling."""

from __future__ import annotations

import pytest
import torch

from darkseg.distill.denoiser import Bottleneck, DiffusionDenoiser


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    ("channels", "ratio", "total", "table"),
    [
        (256, 1.0, 1_840_384, 327_680),  # DGKD-WLSS ScheduledCNNRefine, dgkd-official.md §4
        (21, 1.0, 37_464, 26_880),
        (256, 0.25, 535_552, 327_680),  # DiffKD ε-net, diffkd.md §6.1
    ],
)
def test_parameter_counts_match_reference(channels, ratio, total, table):
    net = DiffusionDenoiser(channels, bottleneck_ratio=ratio)
    assert _count(net) == total
    assert net.time_embed.weight.shape == (1280, channels)
    assert net.time_embed.weight.numel() == table


def test_bottleneck_width_follows_ratio():
    net = DiffusionDenoiser(64, bottleneck_ratio=0.25)
    convs = [m for m in net.blocks[0].modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size) for c in convs] == [
        (64, 16, (1, 1)), (16, 16, (3, 3)), (16, 64, (1, 1))
    ]


def test_bottleneck_is_identity_when_its_last_bn_is_zero():
    block = Bottleneck(8, 8).eval()
    last_bn = block.body[-1][1]
    torch.nn.init.zeros_(last_bn.weight)
    x = torch.randn(2, 8, 5, 5)
    torch.testing.assert_close(block(x), x)  # identity residual, no ReLU after the sum (negatives survive)


def test_shape_int_and_tensor_timesteps_and_embedding_use():
    torch.manual_seed(0)
    net = DiffusionDenoiser(6).eval()
    x = torch.randn(3, 6, 5, 7)
    out = net(x, 400)
    assert out.shape == x.shape
    torch.testing.assert_close(out, net(x, torch.full((3,), 400, dtype=torch.long)))
    mixed = net(x, torch.tensor([400, 0, 999]))
    torch.testing.assert_close(mixed[0], out[0])
    assert not torch.allclose(mixed[1], out[1])


def test_embedding_is_added_per_channel():
    net = DiffusionDenoiser(4).eval()
    x = torch.randn(1, 4, 3, 3)
    with torch.no_grad():
        net.time_embed.weight[7] = torch.arange(4.0)
    shifted = x + torch.arange(4.0)[None, :, None, None]
    with torch.no_grad():
        net.time_embed.weight[0].zero_()
    torch.testing.assert_close(net(x, 7), net(shifted, 0))
