"""SEAM network: raw CAM head over all classes, PCM refinement, GRL and domain classifier ops."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from darkseg.models import WideResNet38Config, build_segmenter
from darkseg.models.factory import SEAMConfig
from darkseg.models.ops.domain_classifier import PixelDomainClassifier
from darkseg.models.ops.grl import dann_coefficient, reverse_gradient
from darkseg.models.ops.pcm import PixelCorrelation, pcm_input

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def tiny_seam(**kw):
    torch.manual_seed(0)
    backbone = WideResNet38Config(width=0.0625, blocks=(1, 1, 1, 1, 1, 1), freeze_bn=False, frozen_stages=())
    return build_segmenter(SEAMConfig(backbone=backbone, pcm_channels=(8, 8), pcm_dim=16, **kw), 5, MEAN, STD)


def test_pcm_input_reference() -> None:
    cam = torch.tensor([[[[2.0, -1.0]], [[1.0, 3.0]], [[4.0, 1.5]]]])  # (1, 3, 1, 2): bg, fg1, fg2
    out = pcm_input(cam)
    # independent: ReLU, divide by per-class max + 1e-5, bg = 1 - max fg, non-max fg zeroed
    fg1 = torch.tensor([1.0, 3.0]) - 1e-5
    fg1 = fg1 / (3.0 + 1e-5)
    fg2 = (torch.tensor([4.0, 1.5]) - 1e-5) / (4.0 + 1e-5)
    assert torch.allclose(out[0, 0, 0], 1 - torch.maximum(fg1, fg2))
    assert torch.allclose(out[0, 1, 0], torch.tensor([0.0, fg1[1]]))
    assert torch.allclose(out[0, 2, 0], torch.tensor([fg2[0], 0.0]))


def test_pcm_matches_dense_formula() -> None:
    torch.manual_seed(1)
    pcm = PixelCorrelation(6, 4)
    cam, feats = torch.rand(2, 3, 5, 4), torch.randn(2, 6, 5, 4)
    out = pcm(cam, feats)
    # independent per-pixel loop: y_i = sum_j cam_j a_ji, a = relu(cos) / column sum
    theta = torch.einsum("dc,bchw->bdhw", pcm.theta.weight.flatten(1), feats).flatten(2)
    for b in range(2):
        f = theta[b] / (theta[b].norm(dim=0, keepdim=True) + 1e-5)
        a = torch.clamp(f.T @ f, min=0)
        a = a / (a.sum(0, keepdim=True) + 1e-5)
        y = torch.stack([sum(cam[b].flatten(1)[:, j] * a[j, i] for j in range(20)) for i in range(20)], dim=1)
        assert torch.allclose(out[b].flatten(1), y, atol=1e-5)


def test_seam_outputs_and_gradients() -> None:
    m = tiny_seam().train()
    image = torch.rand(2, 3, 48, 40)
    out = m(image)
    assert m.mask_stride == 8 and m.num_classes == 5
    assert out["logits"].shape == out["cam_rv"].shape == out["masks"].shape == (2, 5, 6, 5)
    assert torch.allclose(out["cls"], out["logits"][:, 1:].mean((2, 3)))
    assert torch.equal(out["masks"][:, 0], torch.full_like(out["masks"][:, 0], 0.26))
    fg = F.relu(out["cam_rv"][:, 1:])
    assert torch.allclose(out["masks"][:, 1:], fg / (fg.amax((2, 3), keepdim=True) + 1e-5))
    # the PCM reads detached CAMs and features: its loss trains only the PCM projections
    out["cam_rv"].sum().backward()
    assert m.classifier.weight.grad is None and m.backbone.conv1a.weight.grad is None
    assert m.pcm.theta.weight.grad is not None and m.pcm_b4.weight.grad is not None


def test_seam_eval_is_deterministic_and_bn_stats_untouched_by_pcm() -> None:
    m = tiny_seam().train()
    running = m.backbone.b5.bn_branch2a.running_mean.clone()
    x = torch.rand(2, 3, 32, 32)
    m.backbone((x - m.mean) / m.std)
    once = m.backbone.b5.bn_branch2a.running_mean.clone()
    m.backbone.b5.bn_branch2a.running_mean.copy_(running)
    m(x)
    assert torch.allclose(m.backbone.b5.bn_branch2a.running_mean, once)  # updated once, not twice
    m.eval()
    with torch.no_grad():
        a, b = m(x), m(x)
    assert torch.equal(a["masks"], b["masks"])


def test_grl_identity_forward_reversed_gradient() -> None:
    x = torch.randn(3, 4, requires_grad=True)
    y = reverse_gradient(x, 0.25)
    assert torch.equal(y, x)
    (y * 2).sum().backward()
    assert torch.allclose(x.grad, torch.full_like(x, -0.5))
    with pytest.raises(ValueError):
        reverse_gradient(x, -1.0)


def test_dann_coefficient_schedule() -> None:
    assert dann_coefficient(0.0) == 0.0
    assert dann_coefficient(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert dann_coefficient(1.0) == pytest.approx(0.9999092)
    assert dann_coefficient(2.0) == dann_coefficient(1.0)


def test_domain_classifier_heads_are_independent() -> None:
    torch.manual_seed(0)
    d = PixelDomainClassifier(16, 3, hidden=(8, 4)).eval()
    feats = torch.randn(2, 16, 5, 6)
    out = d(feats)
    assert out.shape == (2, 3, 2, 5, 6)
    hidden = d.trunk(feats)
    w, b = d.heads.weight.flatten(1), d.heads.bias
    head1 = torch.einsum("oc,bchw->bohw", w[2:4], hidden) + b[2:4, None, None]
    assert torch.allclose(out[:, 1], head1, atol=1e-6)
