"""PLDA's ablation variants and third host: pixel-level MMD and MADA (Tab. VII) against explicit computations,
MaskAssign-OC's ordinary classifier (loading, erased-image scoring; Tab. VIII), PLDA on the plain CAM baseline."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
import yaml
from safetensors.torch import save_file

from darkseg.cli import main
from darkseg.config import ExperimentConfig
from darkseg.errors import CheckpointError, ConfigError
from darkseg.methods.base import DatasetInfo
from darkseg.methods.cam import CAMMethod
from darkseg.methods.plda import (
    PLDA,
    OCConfig,
    PLDAConfig,
    erase,
    normalised_cam,
    ordinary_classifier,
)
from darkseg.methods.pixel_alignment import domain_labels, gaussian_mmd, mada_loss, pixel_mmd
from darkseg.metrics import IGNORE_INDEX
from darkseg.models import CAMConfig, build_segmenter
from darkseg.models.ops.domain_classifier import ClassWiseDomainClassifiers
from darkseg.models.ops.grl import dann_coefficient

INFO = DatasetInfo(("background", "a", "b", "c"), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
TINY_CAM = {"name": "cam", "backbone": {"name": "wideresnet38", "width": 0.0625, "blocks": [1, 1, 1, 1, 1, 1],
                                        "freeze_bn": False, "frozen_stages": []}}
BANDWIDTHS = (0.25, 0.5, 1.0, 2.0, 4.0)


def _mmd_loop(x: torch.Tensor, y: torch.Tensor, bandwidths: tuple[float, ...]) -> float:
    """Biased multi-kernel MMD² with every sum written out (bandwidths × mean distinct-pair squared distance)."""
    z = [list(map(float, r)) for r in torch.cat([x, y])]

    def d2(a: list[float], b: list[float]) -> float:
        return sum((u - v) ** 2 for u, v in zip(a, b, strict=True))

    pairs = [d2(a, b) for i, a in enumerate(z) for j, b in enumerate(z) if i != j]
    scale = sum(pairs) / len(pairs)

    def k(a: list[float], b: list[float]) -> float:
        return sum(math.exp(-d2(a, b) / (s * scale)) for s in bandwidths) / len(bandwidths)

    def mean(us: list, vs: list) -> float:
        return sum(k(u, v) for u in us for v in vs) / (len(us) * len(vs))

    xs, ys = z[: len(x)], z[len(x):]
    return mean(xs, xs) + mean(ys, ys) - 2 * mean(xs, ys)


def test_gaussian_mmd_matches_explicit_sums() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(4, 3), torch.randn(5, 3) + 1.5
    assert gaussian_mmd(x, y, BANDWIDTHS).item() == pytest.approx(_mmd_loop(x, y, BANDWIDTHS), rel=1e-5)
    assert gaussian_mmd(x, y, (1.0,)).item() == pytest.approx(_mmd_loop(x, y, (1.0,)), rel=1e-5)
    assert gaussian_mmd(x, x.clone(), BANDWIDTHS).abs() < 1e-6  # same sample: no discrepancy


def _features_and_domains() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    feats = torch.randn(2, 3, 4, 4, requires_grad=True)
    domain = torch.full((2, 2, 4, 4), IGNORE_INDEX)
    domain[0, 0, :2] = 0  # 8 source pixels of class 1 in image 0
    domain[0, 1, 1:3] = 1  # target pixels of class 2; row 1 overlaps the source: source wins
    domain[1, 1, 3, :3] = 1
    return feats, domain


def test_pixel_mmd_draws_a_bounded_sample_of_each_domain() -> None:
    feats, domain = _features_and_domains()
    flat = feats.permute(0, 2, 3, 1).reshape(-1, 3)
    src = list(range(8))  # flat index b·16 + y·4 + x: image 0, rows 0-1
    tgt = list(range(8, 12)) + [28, 29, 30]  # image 0 row 2 (row 1 is source), image 1 row 3
    full = pixel_mmd(feats, domain, 100, BANDWIDTHS, torch.Generator().manual_seed(5))
    assert full.item() == pytest.approx(_mmd_loop(flat[src].detach(), flat[tgt].detach(), BANDWIDTHS), rel=1e-5)
    # at most 3 per domain: source first, then target, each a random permutation's head from the one generator
    g = torch.Generator().manual_seed(5)
    pick_s = torch.tensor(src)[torch.randperm(len(src), generator=g)[:3]]
    pick_t = torch.tensor(tgt)[torch.randperm(len(tgt), generator=g)[:3]]
    bounded = pixel_mmd(feats, domain, 3, BANDWIDTHS, torch.Generator().manual_seed(5))
    assert bounded.item() == pytest.approx(_mmd_loop(flat[pick_s].detach(), flat[pick_t].detach(), BANDWIDTHS),
                                           rel=1e-5)
    bounded.backward()
    assert feats.grad.abs().sum() > 0  # no GRL: MMD pulls the two feature sets together
    empty = domain.clone()
    empty[empty == 1] = IGNORE_INDEX
    assert pixel_mmd(feats, empty, 3, BANDWIDTHS, torch.Generator()).item() == 0.0


def _mada_loop(logits: torch.Tensor, domain: torch.Tensor) -> torch.Tensor:
    """MADA pixel by pixel: class-agnostic label (source wins), every head's mean CE over labelled pixels, summed."""
    b, k, _, h, w = logits.shape
    total = torch.zeros(())
    for head in range(k):
        acc, n = torch.zeros(()), 0
        for i, y, x in itertools.product(range(b), range(h), range(w)):
            column = domain[i, :, y, x].tolist()
            d = 0 if 0 in column else (1 if 1 in column else None)
            if d is None:
                continue
            acc = acc - torch.log_softmax(logits[i, head, :, y, x], 0)[d]
            n += 1
        total = total + acc / n
    return total


def test_mada_loss_matches_loop() -> None:
    torch.manual_seed(2)
    logits = torch.randn(2, 3, 2, 3, 4)
    domain = torch.randint(0, 3, (2, 3, 3, 4))
    domain[domain == 2] = IGNORE_INDEX
    assert torch.allclose(mada_loss(logits, domain), _mada_loop(logits, domain), atol=1e-5)
    assert mada_loss(logits, torch.full_like(domain, IGNORE_INDEX)) == 0


def test_classwise_discriminators_are_independent_networks() -> None:
    torch.manual_seed(3)
    net = ClassWiseDomainClassifiers(3, 2, hidden=(4, 5), dropout=0.0).eval()
    feats, probs = torch.randn(2, 3, 3, 3), torch.rand(2, 2, 3, 3)
    out = net(feats, probs)
    assert out.shape == (2, 2, 2, 3, 3)
    convs = [net.first, *(m for m in net.rest if isinstance(m, torch.nn.Conv2d))]
    for k in range(2):  # discriminator k by hand: its weight blocks on p_k · f
        x = probs[:, k : k + 1] * feats
        for conv, width in zip(convs, (4, 5, 2)):
            x = F.conv2d(x, conv.weight[k * width : (k + 1) * width], conv.bias[k * width : (k + 1) * width])
            x = F.relu(x) if width != 2 else x
        assert torch.allclose(out[:, k], x, atol=1e-5)
    bound = math.sqrt(6 / (3 + 4))  # Xavier bound of one discriminator's first layer (fan-in 3, fan-out 4)
    assert convs[0].weight.abs().max() <= bound and convs[0].weight.abs().max() > math.sqrt(6 / (3 + 8))


def test_mada_in_plda_reverses_the_gradient_of_probability_weighted_features() -> None:
    torch.manual_seed(4)
    cfg = PLDAConfig(assign="simple", alignment="mada", hidden=(8, 4), dropout=0.0, cps_source_weight=0.0,
                     cps_target_weight=0.0)
    plda = PLDA(cfg, 6, INFO, total_iterations=10, run_seed=0)
    classifier = plda.build_classifier()
    assert isinstance(classifier, ClassWiseDomainClassifiers) and classifier.num_heads == 3
    masks, logits = torch.rand(2, 4, 5, 5) * 3, torch.randn(2, 4, 5, 5)
    feats = torch.randn(2, 6, 5, 5, requires_grad=True)
    labels = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    step = plda(None, classifier, torch.rand(2, 3, 40, 40), {"masks": masks, "logits": logits,
                                                             "feats": {"layer6": feats}}, labels, iteration=3)
    step.losses["da"].backward()
    reversed_grad = feats.grad.clone()
    feats.grad = None
    # independent: softmax over [1, fg logits], absent classes zeroed, plain (unreversed) MADA loss
    probs = torch.softmax(torch.cat([torch.ones(2, 1, 5, 5), logits[:, 1:]], 1), 1)[:, 1:] * labels[:, :, None, None]
    score = normalised_cam(masks, labels)
    domain = domain_labels(score > 0.6, (score > 0.3) & (score <= 0.6))
    mada_loss(classifier(feats, probs), domain).backward()
    assert torch.allclose(reversed_grad, -dann_coefficient(0.3) * feats.grad, atol=1e-6)


def test_mmd_alignment_needs_no_classifier_and_repeats_per_iteration() -> None:
    cfg = PLDAConfig(assign="simple", alignment="mmd", mmd_pixels=4, cps_source_weight=0.0, cps_target_weight=0.0)
    plda = PLDA(cfg, 6, INFO, total_iterations=10, run_seed=0)
    assert plda.build_classifier() is None
    torch.manual_seed(5)
    feats = torch.randn(2, 6, 6, 6, requires_grad=True)
    out = {"masks": torch.rand(2, 4, 6, 6), "logits": torch.randn(2, 4, 6, 6), "feats": {"layer6": feats}}
    labels = torch.ones(2, 3)
    image = torch.rand(2, 3, 48, 48)
    losses = [plda(None, None, image, out, labels, iteration=it).losses["da"] for it in (3, 3, 4)]
    assert losses[0] == losses[1] and losses[0] != losses[2]  # the sample is a function of (seed, iteration, view)
    losses[0].backward()
    assert feats.grad.abs().sum() > 0


def _cam_model(seed: int, **kw) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_segmenter(CAMConfig.model_validate({**TINY_CAM, **kw}), INFO.num_classes, INFO.mean, INFO.std)


def test_cam_raw_cam_is_the_unnormalised_map_of_the_masks() -> None:
    model = _cam_model(0).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 48, 48))
    raw = out["raw_cam"]
    w = model.classifier.weight.flatten(1)
    assert torch.allclose(raw[:, 1:], torch.einsum("kc,bchw->bkhw", w, out["feats"]["layer6"]), atol=1e-5)
    assert torch.equal(raw[:, 0], torch.zeros_like(raw[:, 0]))
    fg = F.relu(raw[:, 1:])
    assert torch.allclose(out["masks"][:, 1:], fg / (fg.amax(dim=(2, 3), keepdim=True) + 1e-5), atol=1e-6)


@pytest.fixture
def oc_file(tmp_path):
    model = _cam_model(7)
    path = tmp_path / "cam_run.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path, model.state_dict()


def test_ordinary_classifier_loads_a_cam_run_frozen(oc_file) -> None:
    path, state = oc_file
    rng = torch.get_rng_state()
    oc = ordinary_classifier(OCConfig(model=TINY_CAM, weights=str(path)), INFO, run_seed=0)
    assert torch.equal(torch.get_rng_state(), rng)  # built from its own seed
    assert all(torch.equal(v, state[k]) for k, v in oc.state_dict().items())
    assert not oc.training and not any(p.requires_grad for p in oc.parameters())


def test_ordinary_classifier_refuses_missing_and_wrong_files(oc_file, tmp_path) -> None:
    path, _ = oc_file
    with pytest.raises(ConfigError, match=r"^method\.plda\.oc\.weights: MaskAssign-OC needs a trained plain CAM"):
        ordinary_classifier(OCConfig(model=TINY_CAM), INFO, run_seed=0)
    with pytest.raises(CheckpointError, match="weights file not found; check method.plda.oc.weights") as err:
        ordinary_classifier(OCConfig(model=TINY_CAM, weights=str(tmp_path / "none.safetensors")), INFO, 0)
    assert "\n" not in str(err.value)
    wider = {**TINY_CAM, "backbone": {**TINY_CAM["backbone"], "width": 0.125}}
    with pytest.raises(CheckpointError, match=r"does not fit CAM.*method.plda.oc.model \(or the run.s config") as err:
        ordinary_classifier(OCConfig(model=wider, weights=str(path)), INFO, 0)
    assert "\n" not in str(err.value)
    other = DatasetInfo(("background", "a"), INFO.mean, INFO.std)  # a CAM of another label set
    with pytest.raises(CheckpointError, match="classifier.weight"):
        ordinary_classifier(OCConfig(model=TINY_CAM, weights=str(path)), other, 0)
    garbage = tmp_path / "notes.pt"
    garbage.write_text("not weights")
    with pytest.raises(CheckpointError, match="notes.pt"):
        ordinary_classifier(OCConfig(model=TINY_CAM, weights=str(garbage)), INFO, 0)
    assert ordinary_classifier(OCConfig(model=TINY_CAM), INFO, 0, load=False) is not None  # profiling: no file


def test_ordinary_classifier_architecture_from_the_run_folder(oc_file, tmp_path) -> None:
    path, state = oc_file
    with pytest.raises(ConfigError, match=r"config.yaml: not found.*set method.plda.oc.model"):
        ordinary_classifier(OCConfig(weights=str(path)), INFO, 0)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"name": "cam_run", "model": TINY_CAM}))
    oc = ordinary_classifier(OCConfig(weights=str(path)), INFO, 0)  # the run's own model section
    assert all(torch.equal(v, state[k]) for k, v in oc.state_dict().items())
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"model": {"name": "seam"}}))
    with pytest.raises(ConfigError, match=r"not a plain CAM network \(model.name: cam\)"):
        ordinary_classifier(OCConfig(weights=str(path)), INFO, 0)


def test_mask_oc_config_needs_the_oc_section() -> None:
    with pytest.raises(ValueError, match="oc"):
        PLDAConfig(assign="mask_oc")
    with pytest.raises(ValueError, match="oc"):
        PLDAConfig(assign="mask", oc=OCConfig())


@pytest.mark.parametrize("target_pseudo", ["oc", "host"])
def test_mask_oc_targets_come_from_the_oc_on_the_erased_image(oc_file, target_pseudo) -> None:
    path, _ = oc_file
    cfg = PLDAConfig(assign="mask_oc", oc=OCConfig(model=TINY_CAM, weights=str(path), target_pseudo=target_pseudo))
    oc = ordinary_classifier(cfg.oc, INFO, run_seed=0)
    plda = PLDA(cfg, 6, INFO, total_iterations=10, run_seed=0, logits_key="raw_cam", oc=oc)
    host = _cam_model(8).eval()
    calls = []
    host.register_forward_hook(lambda *_: calls.append(1))
    image, labels = torch.rand(2, 3, 48, 48), torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])
    with torch.no_grad():
        out = host(image)
    domain, erased, logits = plda.assign(host, image, out, labels)
    # independent: source on the host's CAM, erased to the mean colour, target = OC's normalised CAM > θ there
    source = normalised_cam(out["masks"], labels) > 0.6
    assert torch.equal(erased, erase(image, source, torch.tensor(INFO.mean)))
    with torch.no_grad():
        oc_out, host_erased = oc(erased), host(erased)
    assert torch.equal(domain, domain_labels(source, normalised_cam(oc_out["masks"], labels) > 0.6))
    assert (domain == 1).any()
    expected = oc_out["raw_cam"] if target_pseudo == "oc" else host_erased["raw_cam"]
    assert torch.allclose(logits, expected, atol=1e-6)
    assert len(calls) == (1 if target_pseudo == "oc" else 2) + 1  # the OC replaces the host's erased pass


def _cam_method(plda: dict | None, seed: int = 3) -> CAMMethod:
    method = {"name": "cam", **({} if plda is None else {"plda": plda})}
    return CAMMethod(ExperimentConfig.model_validate({"seed": seed, "model": TINY_CAM, "train": {"iterations": 10},
                                                      "method": method}), INFO)


def test_plda_on_the_cam_baseline_is_paired_with_cam_alone(oc_file) -> None:
    torch.manual_seed(3)
    alone = _cam_method(None)
    after_alone = torch.get_rng_state()
    torch.manual_seed(3)
    path, _ = oc_file
    plda = _cam_method({"hidden": [16, 8], "assign": "mask_oc", "oc": {"model": TINY_CAM, "weights": str(path)}})
    assert torch.equal(torch.get_rng_state(), after_alone)  # classifier and OC built from their own seeds
    host = plda.nets["model"].state_dict()
    assert all(torch.equal(v, host[k]) for k, v in alone.nets["model"].state_dict().items())
    # the OC is no net of the method: not trained, not checkpointed, not deployed
    assert set(plda.nets) == {"model", "domain"} and plda.checkpoint_nets() == ["model", "domain"]
    assert not any(n.startswith("oc") for n, _ in plda.optimizers()[0].named_parameters)
    batch = {"image": torch.rand(2, 3, 48, 48), "labels": torch.tensor([[1.0, 0, 1], [0, 1, 0]])}
    alone.nets.train(), plda.nets.train()
    torch.manual_seed(5)
    out_alone = alone.training_step("main", batch, 5, {})
    after_alone = torch.get_rng_state()
    torch.manual_seed(5)
    out = plda.training_step("main", batch, 5, {})
    assert torch.equal(torch.get_rng_state(), after_alone) and torch.equal(out.losses["cls"], out_alone.losses["cls"])
    assert set(out.losses) == {"cls", "da", "cps_source", "cps_target"}
    assert out.metrics["plda/alpha"] == pytest.approx(dann_coefficient(0.5))
    sum(out.losses.values()).backward()
    assert plda.nets["domain"].heads.weight.grad.abs().sum() > 0
    assert plda.nets["model"].classifier.weight.grad.abs().sum() > 0


def test_new_plda_configs_train_from_the_cli(seam_scenes, tmp_path) -> None:
    for config in ("scenes_cam", "scenes_cam_plda"):
        assert main(["train", f"configs/plda/{config}.yaml", *seam_scenes, f"output_dir={tmp_path / config}"]) == 0
        assert (tmp_path / config / "model_final.safetensors").is_file()
    oc = tmp_path / "scenes_cam" / "model_final.safetensors"  # the OC; its (tiny) architecture from the run folder
    assert main(["train", "configs/plda/ablations/scenes_plda_mask_oc.yaml", *seam_scenes,
                 f"method.plda.oc.weights={oc}", f"output_dir={tmp_path / 'mask_oc'}"]) == 0
    assert (tmp_path / "mask_oc" / "model_final.safetensors").is_file()
