"""SSSS segmenter: Table 1 counts (params, GMAC on meta), outputs, class scores, gate, freezing, depth hook, configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import TypeAdapter, ValidationError
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from darkseg.errors import ConfigError, DarksegError
from darkseg.models import ModelConfig, SSSSConfig, build_segmenter, load_into
from darkseg.models.backbones import WideResNet38
from darkseg.models.ops.aspp import ASPP
from darkseg.models.ops.stochastic_gate import StochasticGate
from darkseg.models.segmenters import SSSS, convert_1stage_wseg

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
TINY_HEAD = dict(aspp_channels=16, skip_channels=8, decoder_channels=16)


def tiny(num_classes: int = 5, **kw) -> SSSS:
    torch.manual_seed(0)
    return SSSS(WideResNet38(width=0.125, blocks=(1, 1, 1, 1, 1, 1)), num_classes, MEAN, STD, **TINY_HEAD, **kw)


@pytest.fixture(scope="module")
def full_meta() -> SSSS:
    with torch.device("meta"):
        return build_segmenter(SSSSConfig(), 21, MEAN, STD)


def test_table1_params_breakdown_and_groups(full_meta: SSSS) -> None:
    """ssss.md §1: 137,973,172 params, per-part counts, trainable count and optimiser-group sizes."""
    m = full_meta.train()
    parts = {n: sum(p.numel() for p in c.parameters()) for n, c in m.named_children()}
    assert sum(p.numel() for p in m.parameters()) == 137_973_172
    assert parts == {"backbone": 105_070_912, "aspp": 30_739_456, "fc8_skip": 12_384, "fc8_x": 700_928,
                     "gci": 263_680, "sg": 0, "last_conv": 1_185_812}
    trainable = [(n, p) for n, p in m.named_parameters() if p.requires_grad]
    assert sum(p.numel() for _, p in trainable) == 137_104_500
    pre = [p for n, p in trainable if n.startswith(m.pretrained_prefixes)]
    new_w = [p for n, p in trainable if not n.startswith(m.pretrained_prefixes) and not n.endswith(".bias")]
    new_b = [p for n, p in trainable if not n.startswith(m.pretrained_prefixes) and n.endswith(".bias")]
    assert sum(p.numel() for p in pre) == 104_202_240
    assert (sum(p.numel() for p in new_w), sum(p.numel() for p in new_b)) == (32_899_120, 3_140)
    bns = [mod for mod in m.modules() if isinstance(mod, nn.BatchNorm2d)]
    assert (len(bns), sum(not bn.training for bn in bns)) == (50, 43)


def test_table1_gmac_on_meta(full_meta: SSSS) -> None:
    """276.6 GMAC (±0.3%) at 1×3×321×321, eval, GMAC = FlopCounterMode FLOPs / 2 / 1e9 (ssss.md §1)."""
    m = full_meta.eval()
    with FlopCounterMode(display=False) as counter:
        out = m(torch.empty(1, 3, 321, 321, device="meta"))
    gmac = counter.get_total_flops() / 2 / 1e9
    assert gmac == pytest.approx(276.6, rel=3e-3)
    assert out["masks"].shape == (1, 21, 81, 81) and out["cls"].shape == (1, 20)
    assert out["feats"]["layer3"].shape == (1, 256, 81, 81) and out["feats"]["layer6"].shape == (1, 4096, 41, 41)


@pytest.mark.parametrize("size", [96, 97])  # 321 is covered by the full model on the meta device
def test_shapes_at_odd_sizes(size: int) -> None:
    m = tiny().eval()
    with torch.no_grad():
        out = m(torch.rand(1, 3, size, size))
    h = -(-size // 4)
    assert m.mask_stride == 4 and m.num_classes == 5
    assert out["logits"].shape == out["masks"].shape == (1, 5, h, h)
    assert out["cls"].shape == (1, 4)
    assert out["feats"]["layer3"].shape[-1] == h and out["feats"]["layer6"].shape[-1] == -(-size // 8)


def independent_scores(logits: Tensor, masks: Tensor, lam: float) -> np.ndarray:
    """nGWP (ε 1) + focal penalty (p 3) written out per image and class in float64."""
    z, m = logits.double().numpy(), masks.double().numpy()
    out = np.zeros(z.shape[:2])
    for b in range(z.shape[0]):
        for c in range(z.shape[1]):
            mbar = m[b, c].mean()
            out[b, c] = (m[b, c] * z[b, c]).sum() / (1.0 + m[b, c].sum()) + (1 - mbar) ** 3 * np.log(lam + mbar)
    return out[:, 1:]


@pytest.mark.parametrize("lam", [0.01, 0.3])
def test_outputs_background_softmax_and_class_scores(lam: float) -> None:
    m = tiny(focal_lambda=lam).eval()
    with torch.no_grad():
        out = m(torch.rand(2, 3, 40, 48))
    logits, masks = out["logits"], out["masks"]
    assert torch.equal(logits[:, 0], torch.ones_like(logits[:, 0]))
    assert torch.allclose(masks, logits.softmax(1)) and torch.allclose(masks.sum(1), torch.ones(2, 10, 12))
    assert np.allclose(out["cls"].double().numpy(), independent_scores(logits, masks, lam), atol=1e-5)


def test_gradients_skip_frozen_parameters() -> None:
    m = tiny().train()
    out = m(torch.rand(2, 3, 32, 32))
    (out["cls"].sum() + out["masks"][:, 1:].mean()).backward()
    assert m.backbone.conv1a.weight.grad is None and m.backbone.b3.bn_branch2a.weight.grad is None
    assert m.backbone.b3.conv_branch2a.weight.grad is not None and m.last_conv[-1].bias.grad is not None
    assert m.aspp.project[0][1].weight.grad is not None  # ASPP BN affine trains, its statistics do not


def test_bn_freezing_after_train() -> None:
    m = tiny()
    assert m.train() is m
    assert not m.backbone.b4.bn_branch2a.training and not m.backbone.b4.bn_branch2a.weight.requires_grad
    aspp_bns = [b for b in m.aspp.modules() if isinstance(b, nn.BatchNorm2d)]
    assert len(aspp_bns) == 6 and all(not b.training and b.weight.requires_grad for b in aspp_bns)
    assert m.fc8_x[1].training and m.gci.fc_cls[1].training
    m(torch.rand(2, 3, 32, 32))
    assert all(torch.equal(b.running_mean, torch.zeros_like(b.running_mean)) for b in aspp_bns)
    assert not torch.equal(m.fc8_x[1].running_mean, torch.zeros_like(m.fc8_x[1].running_mean))
    dgkd = tiny(freeze_aspp_bn_stats=False)
    dgkd.train()
    assert all(b.training for b in dgkd.aspp.modules() if isinstance(b, nn.BatchNorm2d))


def test_stochastic_gate_fresh_mask_and_eval_mixing() -> None:
    sg = StochasticGate(0.3).train()
    deep, shallow = torch.randn(4, 8, 16, 16), torch.randn(4, 8, 16, 16)
    a, b = sg(deep, shallow), sg(deep, shallow)
    assert not torch.equal(a, b)
    x1 = (deep - 0.3 * shallow) / 0.7
    picked_deep = torch.isclose(a, x1)
    assert (picked_deep | torch.isclose(a, shallow)).all()
    assert picked_deep.float().mean().item() == pytest.approx(0.7, abs=0.03)
    assert sg(deep[:1, :, :5, :7], shallow[:1, :, :5, :7]).shape == (1, 8, 5, 7)  # no cached shape
    torch.manual_seed(0)
    mean = torch.stack([sg(deep, shallow) for _ in range(200)]).mean(0)
    assert (mean - deep).abs().mean() < 0.1  # E[out] = deep (per-element sampling std about 0.07 here)
    sg.eval()
    assert torch.equal(sg(deep, shallow), sg(deep, shallow))
    assert torch.allclose(sg(deep, shallow), 0.7 * deep + 0.3 * shallow)


class Prior(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.calls = 0

    def forward(self, depth: Tensor) -> Tensor:
        self.calls += 1
        return self.conv(depth)


class Fuse(nn.Module):
    def forward(self, x: Tensor, prior: Tensor | None) -> Tensor:
        assert prior is not None
        return x + prior.mean()


def test_depth_prior_hook_and_skip_fused() -> None:
    image, depth = torch.rand(1, 3, 32, 32), torch.rand(1, 1, 32, 32)
    plain = tiny().eval()
    with torch.no_grad():
        assert torch.equal(plain(image)["masks"], plain(image, depth)["masks"])  # no prior module: depth ignored
    prior = Prior()
    m = tiny(prior_net=prior, fusions={"b2": Fuse(), "b3": Fuse()}).eval()
    assert not any(p.startswith("backbone.fusions") for p in m.pretrained_prefixes)
    with torch.no_grad():
        out = m(image, depth)
        taps = m.backbone((image - m.mean) / m.std, prior(depth))
    assert prior.calls == 2
    assert torch.allclose(out["feats"]["layer3"], taps["b3"])
    with pytest.raises(DarksegError, match="no depth was given"):
        m(image)
    fused = tiny(prior_net=Prior(), fusions={"b3": Fuse()}, skip_fused=True).eval()
    with torch.no_grad():
        out = fused(image, depth)
    assert torch.allclose(out["feats"]["layer3"], fused.backbone(
        (image - fused.mean) / fused.std, fused.prior_net(depth))["b3_fused"])


def test_normalize_input_option_and_min_size() -> None:
    seen: list[Tensor] = []
    m = tiny(normalize_input=False).eval()
    m.backbone.conv1a.register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    image = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        m(image)
    assert torch.equal(seen[0], image)
    m.normalize_input = True
    with torch.no_grad():
        m(image)
    assert torch.allclose(seen[1], (image - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1))
    with pytest.raises(DarksegError, match="smaller than the model's minimum 8x8"):
        m(torch.rand(1, 3, 7, 16))


def test_config_defaults_and_validation() -> None:
    cfg = SSSSConfig()
    assert (cfg.sg_psi, cfg.bg_logit, cfg.ngwp_eps, cfg.focal_p, cfg.focal_lambda) == (0.3, 1.0, 1.0, 3.0, 0.01)
    assert cfg.aspp_rates == (12, 24, 36) and cfg.backbone.frozen_stages == ("conv1a", "b2") and cfg.backbone.freeze_bn
    adapter = TypeAdapter(ModelConfig)
    dgkd = adapter.validate_python({"name": "ssss", "focal_lambda": 0.3, "normalize_input": False,
                                    "backbone": {"name": "wideresnet38", "freeze_bn": False, "frozen_stages": []}})
    assert isinstance(dgkd, SSSSConfig) and dgkd.focal_lambda == 0.3
    with pytest.raises(ValidationError, match=r"ssss\.sg_psi"):
        adapter.validate_python({"name": "ssss", "sg_psi": 1.0})
    with pytest.raises(ValidationError, match=r"ssss\.backbone\.wideresnet38\.blocks"):
        adapter.validate_python({"name": "ssss", "backbone": {"name": "wideresnet38", "blocks": [3, 3, 6]}})
    with pytest.raises(ValidationError, match=r"ssss\.backbone\.resnet\.output_stride"):
        adapter.validate_python({"name": "ssss", "backbone": {"name": "resnet", "output_stride": 4}})
    with pytest.raises(ValidationError, match="ssss.aspp_dropuot"):
        adapter.validate_python({"name": "ssss", "aspp_dropuot": 0.5})
    with pytest.raises(ConfigError, match="num_classes"):
        build_segmenter(cfg, 1, MEAN, STD)


def test_resnet_backbone_aspp_rates_scale_with_output_stride() -> None:
    cfg = TypeAdapter(ModelConfig).validate_python(
        {"name": "ssss", **TINY_HEAD, "backbone": {"name": "resnet", "depth": 18, "width": 0.25,
                                                   "blocks": [1, 1, 1, 1], "output_stride": 16}})
    m = build_segmenter(cfg, 4, MEAN, STD).eval()
    assert [b[0].dilation[0] for b in m.aspp.branches] == [1, 6, 12, 18]
    with torch.no_grad():
        out = m(torch.rand(1, 3, 65, 65))
    assert out["masks"].shape == (1, 4, 17, 17) and out["feats"]["layer6"].shape[-1] == 5
    assert isinstance(m.aspp, ASPP)


#: darkseg name prefix -> 1-stage-wseg name prefix (the reference SoftMaxAE module layout), written by hand
REFERENCE_PREFIXES = {
    **{f"aspp.branches.{i}.0.": f"aspp.aspp{i + 1}.atrous_conv." for i in range(4)},
    **{f"aspp.branches.{i}.1.": f"aspp.aspp{i + 1}.bn." for i in range(4)},
    "aspp.pool.0.": "aspp.global_avg_pool.1.", "aspp.pool.1.": "aspp.global_avg_pool.2.",
    "aspp.project.0.0.": "aspp.conv1.", "aspp.project.0.1.": "aspp.bn1.", "gci.": "shallow_mask.",
    "last_conv.0.0.": "last_conv.0.", "last_conv.0.1.": "last_conv.1.", "last_conv.2.0.": "last_conv.4.",
    "last_conv.2.1.": "last_conv.5.", "last_conv.4.": "last_conv.8.", "backbone.": "",
    "fc8_skip.": "fc8_skip.", "fc8_x.": "fc8_x.",
}


def test_load_1stage_wseg_checkpoint() -> None:
    src = tiny()
    with torch.no_grad():
        for t in src.state_dict().values():
            if t.is_floating_point():
                t.mul_(torch.empty_like(t).uniform_(0.9, 1.1)).add_(0.01)  # differs from tiny()'s seeded init
    ref: dict[str, Tensor] = {"_aff.aff_x.kernel": torch.zeros(48, 1, 3, 3)}
    for key, value in src.state_dict().items():
        prefix = next(p for p in REFERENCE_PREFIXES if key.startswith(p))
        ref["module." + REFERENCE_PREFIXES[prefix] + key[len(prefix):]] = value
    assert "module.shallow_mask.fc_skip.1.running_var" in ref and "module.b3.conv_branch2a.weight" in ref
    dst = tiny()
    report = load_into(dst, convert_1stage_wseg({k.removeprefix("module."): v for k, v in ref.items()}))
    assert report.complete
    assert all(torch.equal(v, dst.state_dict()[k]) for k, v in src.state_dict().items())
    image = torch.rand(1, 3, 33, 33)
    with torch.no_grad():
        assert torch.equal(src.eval()(image)["masks"], dst.eval()(image)["masks"])


def test_factory_dgf2_student_counts_on_meta() -> None:
    """dgkd-official.md §5/§10: DGF2 after b2, b3, b4 adds 215,968 params and about 1.51 GMAC at 321×321."""
    cfg = TypeAdapter(ModelConfig).validate_python({"name": "ssss", "focal_lambda": 0.3, "dgf2": {}})
    with torch.device("meta"):
        m = build_segmenter(cfg, 21, MEAN, STD).eval()
    assert m.uses_depth and set(m.backbone.fusions) == {"b2", "b3", "b4"}
    assert sum(p.numel() for p in m.parameters()) == 137_973_172 + 215_968
    assert not any(n.startswith(m.pretrained_prefixes) for n, _ in m.named_parameters() if "fusions" in n)
    with FlopCounterMode(display=False) as counter:
        m(torch.empty(1, 3, 321, 321, device="meta"), torch.empty(1, 1, 321, 321, device="meta"))
    assert counter.get_total_flops() / 2e9 == pytest.approx(276.64 + 1.51, abs=0.05)
    assert m.feature_channels == {"layer3": 256, "layer6": 4096}


def test_factory_tiny_dgf2_forward_and_skip_pretrained(tmp_path: Path) -> None:
    cfg = TypeAdapter(ModelConfig).validate_python({
        "name": "ssss", **TINY_HEAD, "dgf2": {"stages": ["b3"]},
        "backbone": {"name": "wideresnet38", "width": 0.125, "blocks": [1, 1, 1, 1, 1, 1],
                     "pretrained": str(tmp_path / "absent.pth")}})
    m = build_segmenter(cfg, 4, MEAN, STD, load_pretrained=False).eval()  # the absent file is not read
    with torch.no_grad():
        out = m(torch.rand(1, 3, 40, 40), torch.rand(1, 1, 40, 40))
    assert out["masks"].shape == (1, 4, 10, 10) and out["feats"]["layer3"].shape[1] == m.feature_channels["layer3"]
    assert not tiny().uses_depth
    bad = cfg.model_copy(update={"dgf2": cfg.dgf2.model_copy(update={"stages": ["layer2"]})})
    with pytest.raises(ConfigError, match="dgf2.stages"):
        build_segmenter(bad, 4, MEAN, STD)


def test_pseudo_labels_use_pamr_dilations_scaled_to_the_mask_grid() -> None:
    from darkseg.methods.ssss import PseudoLabelConfig, SSSSLosses, SSSSMethodConfig
    from darkseg.models.ops.pamr import PAMR

    g = torch.Generator().manual_seed(0)
    image, masks = torch.rand(2, 3, 96, 96, generator=g), torch.rand(2, 5, 24, 24, generator=g).softmax(1)
    labels = torch.tensor([[1.0, 0, 1, 0], [0, 1, 0, 0]])
    scaled = SSSSLosses(SSSSMethodConfig(pseudo=PseudoLabelConfig(pamr_dilation_grid=81)))
    fixed = SSSSLosses(SSSSMethodConfig())
    small = torch.nn.functional.interpolate(image, size=(24, 24), mode="bilinear", align_corners=True)
    assert torch.equal(scaled.pamr(small, masks), PAMR(10, (1, 2, 4, 7))(small, masks))
    assert not torch.equal(scaled.pseudo_target(image, masks, labels), fixed.pseudo_target(image, masks, labels))


def test_mask_loss_start_as_a_fraction_of_the_run() -> None:
    from darkseg.methods.ssss import PseudoLabelConfig, SSSSLosses, SSSSMethodConfig

    cfg = SSSSMethodConfig(mask_loss_start=5, mask_loss_start_fraction=0.2, mask_loss_weight=2.0,
                           pseudo=PseudoLabelConfig(image_gate=False))
    losses = SSSSLosses(cfg, iterations=700)
    assert losses.mask_loss_start == 140
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 3, 4, 4, generator=g)
    out = {"cls": torch.zeros(1, 2), "masks": logits.softmax(1), "logits": logits}
    image, labels = torch.rand(1, 3, 16, 16, generator=g), torch.tensor([[1.0, 0.0]])
    assert float(losses(out, image, labels, 139).losses["seg"]) == 0.0
    on = losses(out, image, labels, 140)
    assert float(on.metrics["seg_unweighted"]) > 0
    assert torch.equal(on.losses["seg"], 2.0 * on.metrics["seg_unweighted"])
    with pytest.raises(ValueError, match="iterations"):
        SSSSLosses(SSSSMethodConfig(mask_loss_start_fraction=0.2))
