"""ASDT network: shared backbone, class-teacher CAMs, two dilated seg branches with own weights, fused output."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from darkseg.models.backbones.base import Backbone
from darkseg.models.factory import ASDTConfig, ResNetConfig, WideResNet38Config, build_segmenter
from darkseg.models.segmenters.asdt import fuse_predictions

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def small(fusion: str = "max", **kw):
    torch.manual_seed(0)
    cfg = ASDTConfig(backbone=WideResNet38Config(width=0.0625, blocks=(1, 1, 1, 1, 1, 1), freeze_bn=False,
                                                 frozen_stages=()),
                     seg_channels=16, seg_dilation=2, fusion=fusion, **kw)
    return build_segmenter(cfg, 5, MEAN, STD)


def test_outputs_match_an_independent_computation() -> None:
    m = small().eval()
    image = torch.rand(2, 3, 48, 56)
    with torch.no_grad():
        out = m(image)
        feats = m.backbone((image - m.mean) / m.std)[m.backbone.out_tap]
    assert m.mask_stride == 8 and out["cams"].shape == (2, 4, 6, 7) and out["s_logits"].shape == (2, 5, 6, 7)
    w = m.classifier.weight.flatten(1)
    assert torch.allclose(out["cls"], feats.mean((2, 3)) @ w.T, atol=1e-5)
    assert torch.allclose(out["cams"], F.relu(torch.einsum("kc,bchw->bkhw", w, feats)), atol=1e-5)
    for name, branch in (("st_logits", m.seg_teacher), ("s_logits", m.student)):
        conv1, conv2 = branch[0], branch[2]
        assert conv1.dilation == (2, 2) and conv2.dilation == (2, 2) and conv1.bias is not None
        ref = F.conv2d(F.relu(F.conv2d(feats, conv1.weight, conv1.bias, padding=2, dilation=2)),
                       conv2.weight, conv2.bias, padding=2, dilation=2)
        assert torch.allclose(out[name], ref, atol=1e-5)
    fused = torch.maximum(out["st_logits"].softmax(1), out["s_logits"].softmax(1))
    assert torch.allclose(out["masks"], fused / fused.sum(1, keepdim=True), atol=1e-6)
    assert torch.allclose(out["logits"], out["masks"].log(), atol=1e-5)


def test_branches_have_their_own_weights_and_cam_only_skips_them() -> None:
    m = small().train()
    assert m.seg_teacher[0].weight.data_ptr() != m.student[0].weight.data_ptr()
    assert not torch.equal(m.seg_teacher[0].weight, m.student[0].weight)
    out = m(torch.rand(1, 3, 40, 40), cam_only=True)
    assert set(out) == {"cls", "cams"}
    out = m(torch.rand(1, 3, 40, 40))
    (out["s_logits"].sum()).backward()
    assert m.student[0].weight.grad is not None and m.seg_teacher[0].weight.grad is None


@pytest.mark.parametrize("fusion", ["mean", "multiply"])
def test_fusion_options(fusion: str) -> None:
    a, b = torch.rand(2, 3, 4, 4).softmax(1), torch.rand(2, 3, 4, 4).softmax(1)
    ref = 0.5 * (a + b) if fusion == "mean" else a * b
    assert torch.allclose(fuse_predictions(a, b, fusion), ref / ref.sum(1, keepdim=True))


def test_without_seg_teacher_masks_are_the_student_softmax() -> None:
    m = small(seg_teacher=False).eval()
    with torch.no_grad():
        out = m(torch.rand(1, 3, 40, 40))
    assert m.seg_teacher is None and "st_logits" not in out
    assert torch.allclose(out["masks"], out["s_logits"].softmax(1))


def test_resnet_backbone() -> None:
    cfg = ASDTConfig(backbone=ResNetConfig(depth=18, width=0.25, blocks=(1, 1, 1, 1), output_stride=8),
                     seg_channels=8)
    m = build_segmenter(cfg, 3, MEAN, STD).eval()
    assert isinstance(m.backbone, Backbone) and m.student[0].dilation == (12, 12)
    with torch.no_grad():
        out = m(torch.rand(1, 3, 64, 64))
    assert out["masks"].shape == (1, 3, 8, 8) and out["cls"].shape == (1, 2)


def test_without_student_masks_are_the_seg_teacher_softmax() -> None:
    m = small(student=False).eval()
    with torch.no_grad():
        out = m(torch.rand(1, 3, 40, 40))
    assert m.student is None and "s_logits" not in out
    assert torch.allclose(out["masks"], out["st_logits"].softmax(1))
    with pytest.raises(ValueError, match="at least one segmentation branch"):
        small(seg_teacher=False, student=False)


def test_models_with_and_without_a_branch_start_alike() -> None:
    """Paired runs: the backbone, classifier and every built branch have the same weights, and the global RNG is
    left in the same state, whichever branches the model has."""
    full = small()
    next_draw = torch.rand(3)
    for kw in ({"student": False}, {"seg_teacher": False}):
        m = small(**kw)
        assert torch.equal(torch.rand(3), next_draw), kw
        state = m.state_dict()
        assert state and all(torch.equal(t, full.state_dict()[name]) for name, t in state.items()), kw
    assert not torch.equal(full.seg_teacher[0].weight, full.student[0].weight)
