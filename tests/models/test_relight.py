"""The relighting network, the relit segmenter built from a config, and the output-space discriminator."""

from __future__ import annotations

import torch

from darkseg.config import ExperimentConfig
from darkseg.models.factory import build_segmenter
from darkseg.models.ops.discriminator import FCDiscriminator
from darkseg.models.relight import RelightNet, RelitSegmenter

SEG = {"name": "deeplabv2", "rates": [1, 2], "aux_head": True,
       "backbone": {"name": "resnet", "depth": 50, "variant": "caffe", "output_stride": 8, "width": 0.0625,
                    "blocks": [1, 1, 1, 1], "freeze_bn": False}}


def _count(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_sizes_match_dannet():
    # DANNet's LightNet: 4.30 M parameters; its FCDiscriminator: 1.73 M for 19 classes, 960² -> 237² scores.
    assert round(_count(RelightNet(64, 3)) / 1e6, 2) == 4.30
    d = FCDiscriminator(19)
    assert round(_count(d) / 1e6, 2) == 1.73
    assert d(torch.zeros(1, 19, 64, 64)).shape == (1, 1, 13, 13)  # 64 -> 32 -> 16 -> 15 -> 14 -> 13


def _relit(width: int = 4) -> RelitSegmenter:
    cfg = ExperimentConfig.model_validate({"model": {"name": "relit", "relight": {"width": width},
                                                     "segmenter": SEG}, "method": {"name": "supervised"}})
    model = build_segmenter(cfg.model, 5, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert isinstance(model, RelitSegmenter)
    return model


def test_relit_segmenter_starts_as_identity_and_trains():
    torch.manual_seed(0)
    model = _relit()
    image = torch.rand(2, 3, 34, 42)  # not a multiple of 4: padded for the relighting net, cropped back
    out = model(image)
    assert torch.equal(out["relit"], image) and out["light"].abs().max() == 0
    assert out["logits"].shape[:2] == (2, 5) and "aux_logits" in out
    plain = model.segmenter(image)
    assert torch.allclose(out["logits"], plain["logits"])
    # the relighting network learns: after one step on a loss of the relit image, r is no longer 0
    opt = torch.optim.SGD(model.relight.parameters(), lr=0.1)
    (model(image)["relit"] - 0.5).pow(2).mean().backward()
    opt.step()
    assert model(image)["light"].abs().max() > 0
    assert model.pretrained_prefixes == tuple(f"segmenter.{p}" for p in model.segmenter.pretrained_prefixes)


def test_segmenter_initialisation_unchanged_by_relighting():
    # Paired seeds: the segmenter behind the relighting net starts exactly as the plain one.
    cfg = ExperimentConfig.model_validate({"model": SEG, "method": {"name": "supervised"}})
    torch.manual_seed(3)
    plain = build_segmenter(cfg.model, 5, (0.5,) * 3, (0.25,) * 3)
    torch.manual_seed(3)
    relit = _relit()
    for (k, a), (_, b) in zip(plain.state_dict().items(), relit.segmenter.state_dict().items()):
        assert torch.equal(a, b), k
