"""PLDA: domain assignment, Eq. (5) against an explicit loop, CPS targets, GRL plumbing, the erased pass."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from darkseg.cli import main
from darkseg.config import ExperimentConfig
from darkseg.methods.base import DatasetInfo
from darkseg.methods.plda import (
    PLDA,
    PLDAConfig,
    cps_target,
    erase,
    erased_pass_mode,
    normalised_cam,
)
from darkseg.methods.pixel_alignment import domain_labels, domain_loss
from darkseg.methods.seam import SEAMMethod
from darkseg.metrics import IGNORE_INDEX
from darkseg.models.ops.domain_classifier import PixelDomainClassifier
from darkseg.models.ops.grl import dann_coefficient

INFO = DatasetInfo(("background", "a", "b", "c"), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def test_normalised_cam_and_erase() -> None:
    cam = torch.zeros(1, 3, 2, 2)
    cam[0, 1] = torch.tensor([[1.0, 3.0], [2.0, -1.0]])
    cam[0, 2] = torch.tensor([[5.0, 0.0], [0.0, 0.0]])
    score = normalised_cam(cam, torch.tensor([[1.0, 0.0]]))
    assert torch.allclose(score[0, 0], torch.tensor([[1 / 3, 1.0], [2 / 3, 0.0]]), atol=1e-4)
    assert score[0, 1].abs().sum() == 0  # absent class
    source = score > 0.6
    image = torch.rand(1, 3, 4, 4)
    mean = torch.tensor(INFO.mean)
    erased = erase(image, source, mean)
    region = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 0, 0], [1, 1, 0, 0]], dtype=torch.bool)
    assert torch.equal(erased[0][:, region], mean[:, None].expand(3, int(region.sum())))
    assert torch.equal(erased[0][:, ~region], image[0][:, ~region])


def test_domain_labels_source_wins() -> None:
    source = torch.tensor([[[[True, False, False]]]])
    target = torch.tensor([[[[True, True, False]]]])
    assert domain_labels(source, target).flatten().tolist() == [0, 1, IGNORE_INDEX]


def _eq5_loop(logits: torch.Tensor, domain: torch.Tensor, labelled: bool) -> torch.Tensor:
    """Eq. (5) pixel by pixel."""
    b, k, _, h, w = logits.shape
    total = torch.zeros(())
    for c in range(k):
        acc, count = torch.zeros(()), 0
        for i in range(b):
            n_s = int((domain[i, c] == 0).sum())
            n_t = int((domain[i, c] == 1).sum())
            for y in range(h):
                for x in range(w):
                    d = int(domain[i, c, y, x])
                    if d == IGNORE_INDEX:
                        continue
                    p = torch.softmax(logits[i, c, :, y, x], 0)
                    ent = -(p * p.log()).sum()
                    balance = ((n_s + n_t) - (n_s if d == 0 else n_t)) / (1 + n_s + n_t)
                    acc = acc + (1 + torch.exp(-ent)) * balance * -p[d].log()
                    count += 1
        total = total + acc / max(count if labelled else b * h * w, 1)
    return total


@pytest.mark.parametrize("labelled", [True, False])
def test_domain_loss_matches_loop(labelled: bool) -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 2, 3, 4)
    domain = torch.randint(0, 3, (2, 3, 3, 4))
    domain[domain == 2] = IGNORE_INDEX
    domain[1, 2] = IGNORE_INDEX  # a class with no labelled pixel in one image
    ours = domain_loss(logits, domain, "labelled" if labelled else "all")
    assert torch.allclose(ours, _eq5_loop(logits, domain, labelled), atol=1e-5)


def test_domain_loss_needs_both_domains() -> None:
    logits = torch.randn(1, 1, 2, 2, 2)
    only_source = torch.zeros(1, 1, 2, 2, dtype=torch.long)
    assert domain_loss(logits, only_source) == 0  # balance (N - N_s) / (1 + N) = 0


def test_cps_target_restricts_region_and_background() -> None:
    pseudo = torch.tensor([[[0, 1, 2, IGNORE_INDEX]]])
    region = torch.tensor([[[True, True, False, True]]])
    assert cps_target(pseudo, region, False).flatten().tolist() == [IGNORE_INDEX, 1, IGNORE_INDEX, IGNORE_INDEX]
    assert cps_target(pseudo, region, True).flatten().tolist() == [0, 1, IGNORE_INDEX, IGNORE_INDEX]


def test_grl_reverses_domain_gradient_into_features() -> None:
    torch.manual_seed(0)
    cfg = PLDAConfig(assign="simple", hidden=(8, 4), dropout=0.0, cps_source_weight=0.0, cps_target_weight=0.0)
    plda = PLDA(cfg, 6, INFO, total_iterations=10, run_seed=0)
    classifier = plda.build_classifier()
    cam_rv = torch.rand(2, 4, 5, 5) * 3
    feats = torch.randn(2, 6, 5, 5, requires_grad=True)
    out = {"masks": cam_rv, "logits": torch.randn(2, 4, 5, 5), "feats": {"layer6": feats}}
    labels = torch.ones(2, 3)
    step = plda(None, classifier, torch.rand(2, 3, 40, 40), out, labels, iteration=3)
    step.losses["da"].backward()
    reversed_grad = feats.grad.clone()
    # independent: the same loss without reversal, SimpleAssign labels from the thresholds
    feats.grad = None
    score = normalised_cam(cam_rv, labels)
    domain = domain_labels(score > 0.6, (score > 0.3) & (score <= 0.6))
    domain_loss(classifier(feats), domain).backward()
    assert torch.allclose(reversed_grad, -dann_coefficient(0.3) * feats.grad, atol=1e-6)


def test_erased_pass_mode_keeps_bn_statistics_and_turns_off_stochastic_layers() -> None:
    from darkseg.models.ops.stochastic_gate import StochasticGate

    net = torch.nn.Sequential(torch.nn.Dropout(0.5), torch.nn.BatchNorm1d(3)).train()
    gate = StochasticGate(0.3).train()
    x = torch.randn(4, 3) * 3 + 1
    with erased_pass_mode(net), erased_pass_mode(gate):
        assert not net[0].training and net[1].training and not gate.training
        out = net(x)
    # normalised with the batch statistics, running statistics and the batch count untouched
    ref = (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + net[1].eps)
    assert torch.allclose(out, ref, atol=1e-5)
    assert torch.equal(net[1].running_mean, torch.zeros(3)) and torch.equal(net[1].running_var, torch.ones(3))
    assert int(net[1].num_batches_tracked) == 0 and net[1].momentum == 0.1
    assert net[0].training and gate.training
    with erased_pass_mode(net, dropout=True):
        assert net[0].training
    net(x)  # outside: statistics update again
    assert not torch.equal(net[1].running_mean, torch.zeros(3))


def test_plda_on_seam_step() -> None:
    torch.manual_seed(0)
    model = {"name": "seam", "pcm_channels": [8, 8], "pcm_dim": 16,
             "backbone": {"name": "wideresnet38", "width": 0.0625, "blocks": [1, 1, 1, 1, 1, 1],
                          "freeze_bn": False, "frozen_stages": []}}
    cfg = ExperimentConfig.model_validate({"model": model, "train": {"iterations": 10},
                                           "method": {"name": "seam", "plda": {"hidden": [16, 8]}}})
    m = SEAMMethod(cfg, INFO)
    assert isinstance(m.nets["domain"], PixelDomainClassifier)
    assert "domain" not in {n.split(".")[0] for n in m.deploy_model().state_dict()}
    m.nets.train()
    batch = {"image": torch.rand(2, 3, 48, 48), "labels": torch.tensor([[1.0, 0, 1], [0, 1, 0]])}
    out = m.training_step("main", batch, 5, {})
    assert {"cls", "er", "ecr", "da", "cps_source", "cps_target"} <= set(out.losses)
    assert out.metrics["plda/alpha"] == pytest.approx(dann_coefficient(0.5))
    sum(out.losses.values()).backward()
    assert m.nets["domain"].heads.weight.grad is not None
    spec = m.optimizers()[0]
    assert any(n.startswith("domain.") for n, _ in spec.named_parameters)
    assert not any(n.startswith(spec.pretrained_prefixes) for n, _ in spec.named_parameters if n.startswith("domain."))


def test_simple_assign_thresholds_validated() -> None:
    with pytest.raises(ValueError, match="simple_low"):
        PLDAConfig(assign="simple", simple_low=0.7, theta=0.6)


def test_cps_pseudo_label_ignores_background_logit() -> None:
    plda = PLDA(PLDAConfig(), 6, INFO, total_iterations=10, run_seed=0)
    image = torch.zeros(1, 3, 6, 8)
    image[..., :4] = 1.0  # two flat halves: PAMR keeps the edge
    logits = torch.full((1, 4, 6, 8), -5.0)
    logits[:, 0] = 100.0  # SEAM never trains the background channel: replaced by 1
    logits[:, 1, :, :4] = 5.0
    pseudo = plda.pseudo_label(image, logits, torch.tensor([[1.0, 0.0, 0.0]]))
    assert torch.equal(pseudo[0, :, :4], torch.ones(6, 4, dtype=torch.long))
    assert torch.equal(pseudo[0, :, 4:], torch.zeros(6, 4, dtype=torch.long))


class _BrightnessCAM(torch.nn.Module):
    """Stub network: class 1's CAM = mean brightness per 8×8 cell, through a dropout that would randomise it."""

    def __init__(self) -> None:
        super().__init__()
        self.drop = torch.nn.Dropout(0.9)
        self.seen: list[torch.Tensor] = []

    def forward(self, image: torch.Tensor) -> dict:
        self.seen.append(image)
        cell = F.avg_pool2d(self.drop(image).mean(1, keepdim=True), 8)
        cam = torch.cat([torch.zeros_like(cell), cell, torch.zeros_like(cell)], 1)
        return {"masks": cam, "logits": cam}


def test_mask_assign_erases_source_and_reads_target_without_dropout() -> None:
    model = _BrightnessCAM().train()
    image = torch.zeros(1, 3, 8, 24)
    image[..., 0:8], image[..., 8:16], image[..., 16:24] = 1.0, 0.6, 0.0  # cells 1.0, 0.6, 0.0
    plda = PLDA(PLDAConfig(theta=0.6), 6, INFO, total_iterations=10, run_seed=0)
    out = model(image)
    domain, erased, erased_out = plda.assign(model, image, out, torch.tensor([[1.0, 0.0]]))
    mean = torch.tensor(INFO.mean).view(3, 1, 1)
    # source: normalised CAM (1.0, 0.6, 0.0) > 0.6 -> first cell only; it is erased to the mean colour
    assert torch.equal(model.seen[1], erased) and torch.allclose(erased[0, :, :, :8], mean.expand(3, 8, 8))
    assert torch.equal(erased[0, :, :, 8:], image[0, :, :, 8:])
    # erased pass (dropout off): cells (0.449, 0.6, 0) -> min-max (0.75, 1, 0) > 0.6 -> the first two are target
    assert domain[0, 0, 0].tolist() == [0, 1, IGNORE_INDEX]  # source wins on the first cell
    assert (domain[0, 1] == IGNORE_INDEX).all()  # class 2 is absent
    assert model.drop.training


def test_global_domain_loss_is_plain_ce_over_the_union() -> None:
    from darkseg.methods.pixel_alignment import global_domain_loss

    torch.manual_seed(0)
    logits = torch.randn(1, 1, 2, 1, 3)
    domain = torch.tensor([[[[0, 1, IGNORE_INDEX]], [[1, IGNORE_INDEX, IGNORE_INDEX]]]])  # (1, K=2, 1, 3)
    # pixel 0: source (class 1) wins over target (class 2); pixel 1: target; pixel 2: unassigned
    logp = torch.log_softmax(logits[0, 0, :, 0], dim=0)  # (2, 3)
    expected = -(logp[0, 0] + logp[1, 1]) / 2
    assert torch.allclose(global_domain_loss(logits, domain), expected)
    plda = PLDA(PLDAConfig(alignment="global", hidden=(8, 4)), 6, INFO, total_iterations=10, run_seed=0)
    assert plda.build_classifier().num_heads == 1


# every ablation but MaskAssign-OC, which needs a trained CAM run (test_plda_variants.py trains it first)
PLDA_CONFIGS = [*sorted(Path("configs/plda").glob("scenes_plda*.yaml")),
                *sorted(Path("configs/plda").glob("scenes_ssss*.yaml")),
                *sorted(p for p in Path("configs/plda/ablations").glob("*.yaml") if p.stem != "scenes_plda_mask_oc")]


@pytest.mark.parametrize("config", PLDA_CONFIGS, ids=lambda p: p.stem)
def test_scenes_plda_config_trains(config, seam_scenes, tmp_path) -> None:
    assert main(["train", str(config), *seam_scenes, f"output_dir={tmp_path}"]) == 0
    assert (tmp_path / "model_final.safetensors").is_file()


def _ssss_cfg(plda: dict | None) -> ExperimentConfig:
    model = {"name": "ssss", "aspp_channels": 8, "aspp_rates": [1, 2, 3], "decoder_channels": 8, "skip_channels": 8,
             "freeze_aspp_bn_stats": False,
             "backbone": {"name": "wideresnet38", "width": 0.0625, "blocks": [1, 1, 1, 1, 1, 1],
                          "freeze_bn": False, "frozen_stages": []}}
    method = {"name": "ssss", **({} if plda is None else {"plda": plda})}
    return ExperimentConfig.model_validate({"seed": 3, "model": model, "train": {"iterations": 10},
                                            "method": method})


def test_plda_on_ssss_step_and_pairing_with_ssss_alone() -> None:
    from darkseg.methods.ssss import SSSSMethod

    torch.manual_seed(3)
    alone = SSSSMethod(_ssss_cfg(None), INFO)
    after_alone = torch.get_rng_state()
    torch.manual_seed(3)
    plda = SSSSMethod(_ssss_cfg({"hidden": [16, 8]}), INFO)
    # the domain classifier is built from its own seed: same host weights, same global RNG stream
    assert torch.equal(torch.get_rng_state(), after_alone)
    host = plda.nets["model"].state_dict()
    assert all(torch.equal(v, host[k]) for k, v in alone.nets["model"].state_dict().items())
    assert isinstance(plda.nets["domain"], PixelDomainClassifier) and "domain" not in alone.nets
    batch = {"image": torch.rand(2, 3, 48, 48), "labels": torch.tensor([[1.0, 0, 1], [0, 1, 0]])}
    alone.nets.train(), plda.nets.train()
    torch.manual_seed(5)
    out_alone = alone.training_step("main", batch, 5, {})
    after_alone = torch.get_rng_state()
    torch.manual_seed(5)
    out = plda.training_step("main", batch, 5, {})
    # PLDA's erased pass and classifier dropout draw from their own generator: the host's draws are unchanged
    assert torch.equal(torch.get_rng_state(), after_alone)
    assert torch.equal(out.losses["cls"], out_alone.losses["cls"])
    assert {"cls", "seg", "da", "cps_source", "cps_target"} <= set(out.losses)
    assert out.metrics["plda/alpha"] == pytest.approx(dann_coefficient(0.5))
    sum(out.losses.values()).backward()
    assert plda.nets["domain"].heads.weight.grad.abs().sum() > 0  # stride-8 logits resized to the stride-4 masks
    assert "domain" not in {n.split(".")[0] for n in plda.deploy_model().state_dict()}


def test_plda_step_repeats_with_the_same_seed_and_iteration() -> None:
    from darkseg.methods.ssss import SSSSMethod

    losses = []
    for _ in range(2):
        torch.manual_seed(0)
        m = SSSSMethod(_ssss_cfg({"hidden": [16, 8], "erased_pass_dropout": True}), INFO)
        m.nets.train()
        torch.manual_seed(1)
        batch = {"image": torch.rand(2, 3, 48, 48), "labels": torch.tensor([[1.0, 0, 1], [0, 1, 0]])}
        losses.append(m.training_step("main", batch, 2, {}).losses)
    assert all(torch.equal(losses[0][k], losses[1][k]) for k in losses[0])


def test_cam_score_is_the_best_threshold_of_the_train_split(seam_scenes, tmp_path) -> None:
    from darkseg.config import load_config
    from darkseg.data.registry import build_dataset
    from darkseg.data.transforms import EvalTransform
    from darkseg.engine.cam_sweep import cam_score, class_maps, pseudo_mask
    from darkseg.engine.runner import load_deployed
    from darkseg.metrics import ConfusionMatrix

    config = "configs/plda/scenes_ssss_plda.yaml"
    assert main(["train", config, *seam_scenes, f"output_dir={tmp_path}"]) == 0
    cfg = load_config(config, [*seam_scenes, f"output_dir={tmp_path}"])
    thresholds = (0.05, 0.2, 0.4, 0.6, 0.8)
    score = cam_score(cfg, tmp_path, None, scales=(1.0, 0.5), thresholds=thresholds, max_images=5)
    # independent: class maps of the first 5 train images, one confusion matrix per threshold, the best one
    model = load_deployed(cfg, tmp_path / "model_final.safetensors", torch.device("cpu")).eval()
    data = build_dataset(cfg.data, "train", ("image", "mask", "labels"), EvalTransform())
    maps = [(class_maps(model, data[i]["image"][None], data[i]["labels"], None, True, (1.0, 0.5), True),
             data[i]["mask"]) for i in range(5)]
    best = None
    for t in thresholds:
        cm = ConfusionMatrix(len(data.class_names))
        for fg, mask in maps:
            cm.update(pseudo_mask(fg, t), mask)
        m = cm.compute(data.class_names)
        if best is None or m.miou > best[1].miou:
            best = (t, m)
    assert score["split"] == "train" and score["images"] == 5 and score["bg_threshold"] == best[0]
    assert score["miou"] == pytest.approx(best[1].miou) and score["pixacc"] == pytest.approx(best[1].pixacc)
    assert score["per_class_iou"] == pytest.approx(best[1].iou, nan_ok=True)
    assert set(score["miou_per_threshold"]) == {f"{t:.2f}" for t in thresholds}
