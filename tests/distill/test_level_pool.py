"""``pool``: a level distils the block means of both features (ceil mode), the same computation on smaller maps."""

from __future__ import annotations

import torch

from darkseg.distill.level import DistillLevel, DistillLevelConfig


def _block_means(x: torch.Tensor, k: int) -> torch.Tensor:
    """Mean of each k×k block (partial blocks at the border: mean of the pixels they hold), via NaN padding."""
    b, c, h, w = x.shape
    hp, wp = -(-h // k) * k, -(-w // k) * k
    padded = torch.full((b, c, hp, wp), float("nan"))
    padded[:, :, :h, :w] = x
    return padded.view(b, c, hp // k, k, wp // k, k).nanmean(dim=(3, 5))


def test_pooled_level_equals_official_level_on_block_means():
    torch.manual_seed(0)
    f_s, f_t = torch.randn(2, 6, 7, 7), torch.randn(2, 6, 7, 7)
    losses = {}
    for pool, inputs in ((2, (f_s, f_t)), (1, (_block_means(f_s, 2), _block_means(f_t, 2)))):
        torch.manual_seed(1)
        level = DistillLevel(DistillLevelConfig(pool=pool), 6, 6).train()
        losses[pool] = level(*inputs, torch.Generator().manual_seed(3))
    assert losses[1].keys() == losses[2].keys() == {"diff", "kd"}
    for term in losses[1]:
        torch.testing.assert_close(losses[2][term], losses[1][term], rtol=1e-5, atol=1e-6)


def test_pooled_level_sends_gradients_to_every_student_pixel():
    level = DistillLevel(DistillLevelConfig(pool=2, steps=2), 4, 4)
    f_s = torch.randn(1, 4, 5, 5, requires_grad=True)
    level(f_s, torch.randn(1, 4, 5, 5))["kd"].backward()
    assert (f_s.grad.abs().sum(dim=1) > 0).all()
