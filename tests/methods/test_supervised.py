"""The `supervised` method: cross-entropy against an independent computation, config errors, a training step."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from darkseg.config import ExperimentConfig
from darkseg.errors import ConfigError
from darkseg.methods.base import DatasetInfo
from darkseg.methods.supervised import SupervisedMethod, segmentation_ce

INFO = DatasetInfo(("background", "a", "b"), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
TINY_MODEL = {"name": "pspnet", "channels": 8,
              "backbone": {"name": "resnet", "depth": 50, "variant": "deepstem", "width": 0.125,
                           "blocks": [1, 1, 1, 1], "freeze_bn": False}}


def reference_ce(logits: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Mean (class-weighted) −log softmax over the labelled pixels, written out per pixel."""
    logp = torch.log_softmax(logits, 1).permute(0, 2, 3, 1).reshape(-1, logits.shape[1])
    target = mask.reshape(-1)
    keep = target != 255
    w = weight[target[keep]] if weight is not None else torch.ones(int(keep.sum()))
    return -(w * logp[keep].gather(1, target[keep, None])[:, 0]).sum() / w.sum()


@pytest.mark.parametrize("weighted", [False, True])
def test_segmentation_ce_matches_reference(weighted: bool) -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 4, 4, generator=g)
    mask = torch.randint(0, 3, (2, 8, 8), generator=g)
    mask[0, :3] = 255
    weight = torch.tensor([0.2, 1.0, 3.0]) if weighted else None
    up = F.interpolate(logits, size=(8, 8), mode="bilinear", align_corners=False)
    torch.testing.assert_close(segmentation_ce(logits, mask, weight), reference_ce(up, mask, weight))


def test_all_ignored_gives_zero_and_finite_gradient() -> None:
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    loss = segmentation_ce(logits, torch.full((1, 8, 8), 255))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(logits.grad).all()


def config(**method: object) -> ExperimentConfig:
    return ExperimentConfig.model_validate({"model": TINY_MODEL, "method": {"name": "supervised", **method}})


def test_class_weights_must_match_the_classes() -> None:
    with pytest.raises(ConfigError, match=r"method\.class_weights: 2 values for 3 classes \(background, a, b\)"):
        SupervisedMethod(config(class_weights=[1.0, 2.0]), INFO)


def test_training_step_uses_aux_head_and_learns() -> None:
    torch.manual_seed(0)
    method = SupervisedMethod(config(aux_weight=0.4), INFO)
    method.nets.train()
    mask = torch.randint(0, 3, (2, 4, 4)).repeat_interleave(8, 1).repeat_interleave(8, 2)
    image = F.one_hot(mask, 3).permute(0, 3, 1, 2).float()  # the colour says the class
    batch = {"image": image, "mask": mask}
    out = method.training_step("main", batch, 0, {})
    assert set(out.losses) == {"ce", "aux"}
    spec, = method.optimizers()
    opt = torch.optim.Adam([p for _, p in spec.named_parameters], lr=1e-2)
    first = sum(out.losses.values())
    for _ in range(20):
        opt.zero_grad()
        loss = sum(method.training_step("main", batch, 0, {}).losses.values())
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first.item()
    assert method.train_views() == ("image", "mask")
