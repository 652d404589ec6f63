"""CAM baseline: class scores from GAP, max-normalised CAMs with a constant background, logits = log(masks)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from darkseg.models import CAMConfig, ResNetConfig, WideResNet38Config, build_segmenter
from darkseg.models.segmenters import CAM

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def small_resnet_cam(**kw) -> CAM:
    torch.manual_seed(0)
    cfg = CAMConfig(backbone=ResNetConfig(depth=18, width=0.5, blocks=(1, 1, 1, 1), output_stride=8), **kw)
    return build_segmenter(cfg, 9, MEAN, STD)


def test_cam_outputs_resnet() -> None:
    m = small_resnet_cam().eval()
    image = torch.rand(2, 3, 96, 97)
    with torch.no_grad():
        out = m(image)
        feats = m.backbone((image - m.mean) / m.std)["layer4"]
    assert m.mask_stride == 8 and m.num_classes == 9
    assert out["cls"].shape == (2, 8) and out["masks"].shape == out["logits"].shape == (2, 9, 12, 13)
    assert torch.allclose(out["feats"]["layer6"], feats)
    assert out["feats"]["layer3"].shape[-2:] == (24, 25)
    # independent: GAP then linear classifier; CAM = ReLU(W·f) / (max + 1e-5)
    w = m.classifier.weight.flatten(1)
    assert torch.allclose(out["cls"], feats.mean((2, 3)) @ w.T, atol=1e-5)
    cams = F.relu(torch.einsum("kc,bchw->bkhw", w, feats))
    cams = cams / (cams.flatten(2).max(-1).values[..., None, None] + 1e-5)
    assert torch.allclose(out["masks"][:, 1:], cams, atol=1e-5)
    assert torch.equal(out["masks"][:, 0], torch.full_like(out["masks"][:, 0], 0.1))
    assert out["masks"].max() <= 1.0 and out["masks"].min() >= 0.0
    assert torch.allclose(out["logits"], out["masks"].clamp_min(1e-5).log())
    assert torch.equal(out["logits"].argmax(1), out["masks"].argmax(1))


def test_cam_dropout_train_and_background_score() -> None:
    m = small_resnet_cam(bg_score=0.3, dropout=0.5).train()
    image = torch.rand(2, 3, 64, 64)
    a, b = m(image), m(image)
    assert not torch.equal(a["cls"], b["cls"])  # Dropout2d before GAP in training
    assert torch.equal(a["masks"], b["masks"])  # CAMs use the undropped features; frozen BN keeps them fixed
    assert torch.equal(a["masks"][:, 0], torch.full_like(a["masks"][:, 0], 0.3))
    a["cls"].sum().backward()
    assert m.classifier.weight.grad is not None and m.classifier.bias is None


def test_cam_wideresnet38_quarter_width() -> None:
    cfg = CAMConfig(backbone=WideResNet38Config(width=0.25, blocks=(1, 1, 1, 1, 1, 1)))
    m = build_segmenter(cfg, 3, MEAN, STD).eval()
    with torch.no_grad():
        out = m(torch.rand(1, 3, 41, 41))
    assert m.mask_stride == 8 and out["masks"].shape == (1, 3, 6, 6) and out["cls"].shape == (1, 2)
    assert out["feats"]["layer6"].shape[1] == 1024


def test_cam_config_defaults() -> None:
    cfg = CAMConfig()
    assert (cfg.dropout, cfg.bg_score, cfg.backbone.name) == (0.5, 0.1, "wideresnet38")
    with pytest.raises(ValueError, match="bg_score"):
        CAMConfig(bg_score=0.0)
