"""ASDT: PWM selection signal, structure loss (Eq. 6-8) against brute force, distillation CE, reliable labels,
knowledge workers, and training steps of every Table 4 strategy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError
from safetensors.torch import load_file

from darkseg.config import load_config
from darkseg.engine.runner import build_method
from darkseg.errors import ConfigError
from darkseg.methods.asdt import PWMConfig, distillation_ce, pwm_selects_seg_teacher
from darkseg.methods.asdt_knowledge import (
    KnowledgeConfig,
    KnowledgeJob,
    KnowledgeWorkers,
    class_teacher_probs,
    compute_knowledge,
    hard_label,
    reliable_label,
)
from darkseg.methods.structure_loss import StructureLossConfig, structure_loss

# -- PWM ------------------------------------------------------------------------------------------------------


def test_pwm_paper_setting_is_125_class_teacher_then_25_seg_teacher() -> None:
    pwm = PWMConfig(period=150, duty_ratio=5)
    signal = [pwm_selects_seg_teacher(t, pwm) for t in range(450)]
    for start in (0, 150, 300):
        assert not any(signal[start : start + 125]) and all(signal[start + 125 : start + 150])
    assert sum(signal) == 75


def test_pwm_phase_and_ratio() -> None:
    pwm = PWMConfig(period=10, duty_ratio=1.5, phase=6)  # T_h = 4, T_l = 6; phase 6 starts on the high level
    assert [pwm_selects_seg_teacher(t, pwm) for t in range(12)] == [True] * 4 + [False] * 6 + [True] * 2
    with pytest.raises(ValidationError):
        PWMConfig(period=3, duty_ratio=10)  # T_h would be 0


# -- structure loss -------------------------------------------------------------------------------------------


def brute_force_structure(logits: torch.Tensor, image: torch.Tensor, sxy: float, srgb: float,
                          unlabelled: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. (6)-(8) literally: Σ_i Σ_{j≠i} (1 − max_c p_ci) G_ij Σ_c p_ci (1 − p_cj), mean over the batch; the
    gate is 1 on ``unlabelled`` pixels (RRM's code)."""
    b, c, h, w = logits.shape
    p = logits.softmax(1).flatten(2)  # (B, C, N)
    ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    pos = torch.tensor(np.stack([xs.ravel(), ys.ravel()], 1), dtype=torch.float64)
    total = 0.0
    for k in range(b):
        rgb = (image[k] * 255).flatten(1).T.double()
        d2 = ((pos[:, None] - pos[None]) ** 2).sum(-1)
        i2 = ((rgb[:, None] - rgb[None]) ** 2).sum(-1)
        g = torch.exp(-d2 / (2 * sxy**2) - i2 / (2 * srgb**2))
        pk = p[k].double()
        e = g * (pk.T[:, None, :] * (1 - pk.T[None, :, :])).sum(-1)  # E_ij
        e = e * (1 - torch.eye(h * w, dtype=torch.float64))
        gate = 1 - pk.max(0).values.detach()
        if unlabelled is not None:
            gate = torch.where(unlabelled[k].flatten(), 1.0, gate)
        total = total + (gate[:, None] * e).sum()
    return total / b


def test_structure_loss_equals_brute_force_value_and_gradient() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 5, 7, requires_grad=True)
    image = torch.rand(2, 3, 5, 7)
    cfg = StructureLossConfig(weight=1.0, sigma_rgb=40.0, sigma_xy=3.0, scale=1.0, chunk=6)  # several chunks
    other = torch.randn(2, 3, 5, 7, requires_grad=True)  # a second branch sharing the kernel
    ours = structure_loss([logits, other], image, cfg)
    g_ours = torch.autograd.grad(ours, [logits, other])
    ref = sum(brute_force_structure(x.double(), image, 3.0, 40.0) for x in (logits, other))
    g_ref = torch.autograd.grad(ref, [logits, other])
    assert torch.allclose(ours.double(), ref, rtol=1e-4)
    assert all(torch.allclose(a, b, rtol=1e-3, atol=1e-5) for a, b in zip(g_ours, g_ref))
    half = structure_loss([logits, other], image, cfg.model_copy(update={"weight": 0.5}))
    assert torch.allclose(half, 0.5 * ours)


def test_structure_loss_with_rrm_gate_equals_brute_force() -> None:
    torch.manual_seed(2)
    logits = torch.randn(2, 3, 4, 6, requires_grad=True)
    image = torch.rand(2, 3, 4, 6)
    unlabelled = torch.rand(2, 4, 6) < 0.4
    cfg = StructureLossConfig(weight=1.0, sigma_rgb=40.0, sigma_xy=3.0, scale=1.0, unlabelled_gate=True)
    ours = structure_loss([logits], image, cfg, [unlabelled])
    ref = brute_force_structure(logits.double(), image, 3.0, 40.0, unlabelled)
    assert torch.allclose(ours.double(), ref, rtol=1e-4)
    g_ours, g_ref = (torch.autograd.grad(v, logits)[0] for v in (ours, ref))
    assert torch.allclose(g_ours, g_ref, rtol=1e-3, atol=1e-6)
    assert ours > structure_loss([logits], image, cfg)  # gate 1 ≥ 1 − max p: more energy counts


def test_structure_loss_is_low_for_a_segmentation_that_follows_colour() -> None:
    image = torch.zeros(1, 3, 8, 8)
    image[..., 4:] = 1.0  # two colour halves
    follows = torch.full((1, 2, 8, 8), -5.0)
    follows[:, 0, :, :4] = follows[:, 1, :, 4:] = 5.0
    crosses = torch.full((1, 2, 8, 8), -5.0)
    crosses[:, 0, :4] = crosses[:, 1, 4:] = 5.0
    cfg = StructureLossConfig(weight=1.0, sigma_xy=4.0, scale=1.0)
    assert structure_loss([follows], image, cfg) < structure_loss([crosses], image, cfg)


# -- distillation CE ------------------------------------------------------------------------------------------


def test_distillation_ce_balanced_and_plain() -> None:
    torch.manual_seed(1)
    logits = torch.randn(1, 3, 2, 3)
    target = torch.tensor([[[0, 0, 2], [255, 1, 255]]])
    logp = logits.log_softmax(1)[0]
    ce = {(i, j): -logp[target[0, i, j], i, j] for i in range(2) for j in range(3) if target[0, i, j] != 255}
    bg = (ce[(0, 0)] + ce[(0, 1)]) / 2
    fg = (ce[(0, 2)] + ce[(1, 1)]) / 2
    assert torch.allclose(distillation_ce(logits, target, balanced=True), bg + fg)
    assert torch.allclose(distillation_ce(logits, target, balanced=False), sum(ce.values()) / 4)
    empty = torch.full_like(target, 255)
    assert distillation_ce(logits, empty, balanced=True).item() == 0.0


# -- knowledge ------------------------------------------------------------------------------------------------


def scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A red square (class 2) on a grey background; its CAM peaks in the square's centre and fades outward."""
    image = np.full((40, 40, 3), 90, np.uint8)
    image[10:30, 10:30] = (220, 30, 30)
    ys, xs = np.mgrid[:40, :40]
    cams = np.zeros((3, 40, 40), np.float32)
    cams[1] = np.exp(-((ys - 20) ** 2 + (xs - 20) ** 2) / (2 * 5.0**2)) * 5.0
    labels = np.array([0, 1, 0], np.float32)
    return image, cams, labels


def test_reliable_label_sure_object_core_and_background() -> None:
    image, cams, labels = scene()
    label = reliable_label(image, cams, labels, KnowledgeConfig())
    assert set(np.unique(label)) <= {0, 2, 255}
    assert label[20, 20] == 2 and label[0, 0] == 0 and label[39, 39] == 0
    assert (label[10:30, 10:30] != 0).all()  # no background claimed inside the object
    assert ((label == 2) & (np.pad(np.ones((20, 20), bool), 10) == 0)).sum() == 0  # no object outside it
    unfiltered = reliable_label(image, cams, labels, KnowledgeConfig(reliability=False))
    assert np.array_equal(unfiltered, np.pad(np.full((20, 20), 2, np.uint8), 10))  # the CRFs snap to the square
    assert (label == 255).sum() > 0  # R^ct removes the uncertain ring


def test_reliable_label_at_half_resolution_agrees_with_full_resolution() -> None:
    image, cams, labels = scene()
    full = reliable_label(image, cams, labels, KnowledgeConfig())
    half_image = image.reshape(20, 2, 20, 2, 3).mean((1, 3)).round().astype(np.uint8)
    half_cams = cams.reshape(3, 20, 2, 20, 2).mean((2, 4))
    half = reliable_label(half_image, half_cams, labels, KnowledgeConfig(scale=0.5))
    up = half.repeat(2, 0).repeat(2, 1)
    both = (full != 255) & (up != 255)
    assert both.sum() > 0.3 * full.size and (full[both] == up[both]).mean() > 0.98
    assert KnowledgeConfig(scale=0.5).scaled(KnowledgeConfig().crf).bilateral_sxy == 40.0


def test_reliable_label_guards_a_present_class_without_activation() -> None:
    image, cams, labels = scene()
    labels[2] = 1.0  # class 3 is in the image labels but its CAM is zero everywhere (the reference crashes)
    label = reliable_label(image, cams, labels, KnowledgeConfig())
    assert 3 not in np.unique(label) and label[20, 20] == 2
    nothing = reliable_label(image, cams, np.zeros(3, np.float32), KnowledgeConfig())
    assert (nothing == 0).all()


def test_hard_label_keeps_only_present_classes() -> None:
    probs = np.zeros((4, 2, 2), np.float32)
    probs[3] = 0.9  # absent class 3 would win the argmax
    probs[1, 0] = probs[0, 1] = 0.1
    out = hard_label(np.zeros((2, 2, 3), np.uint8), probs, np.array([1, 0, 0], np.float32), None)
    assert out.tolist() == [[1, 1], [0, 0]]


def test_naive_targets_fuse_class_teacher_and_seg_teacher() -> None:
    image, cams, labels = scene()
    p_ct = class_teacher_probs(cams, labels, 4.0)
    assert np.allclose(p_ct.sum(0), 1) and (p_ct[[1, 3]] == 0).all()
    st = np.zeros_like(p_ct)
    st[0] = 1.0  # a seg-teacher that says background everywhere
    cfg = KnowledgeConfig(st_crf=None)
    _, fused_max = compute_knowledge(KnowledgeJob(image, cams, labels, st, "max"), cfg)
    _, seg_only = compute_knowledge(KnowledgeJob(image, cams, labels, st, "st"), cfg)
    assert (seg_only == 0).all()
    assert np.array_equal(fused_max, np.where(np.maximum(p_ct, st)[2] > np.maximum(p_ct, st)[0], 2, 0))


def test_workers_give_the_inline_result() -> None:
    image, cams, labels = scene()
    jobs = [KnowledgeJob(image, cams, labels), KnowledgeJob(image[:, ::-1].copy(), cams[:, :, ::-1].copy(), labels)]
    inline = KnowledgeWorkers(KnowledgeConfig()).submit(jobs)()
    pool = KnowledgeWorkers(KnowledgeConfig(workers=1))
    try:
        pooled = pool.submit(jobs)()
    finally:
        pool.close()
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(inline, pooled))


# -- training steps -------------------------------------------------------------------------------------------

TINY = ["model.backbone.width=0.0625", "model.backbone.pretrained=null", "model.backbone.blocks=[1,1,1,1,1,1]", "model.seg_channels=8",
        "method.distill_start=0", "method.cam_scales=[1.0,0.5]", "data.augment.crop_size=48"]


def batch() -> dict:
    torch.manual_seed(0)
    labels = torch.tensor([[1.0, 0, 0, 0, 0, 0, 0, 0], [0, 1, 1, 0, 0, 0, 0, 0]])
    return {"image": torch.rand(2, 3, 48, 48), "labels": labels}


@pytest.mark.parametrize("config", ["scenes_rrm", "scenes_asdt", "scenes_class_teacher", "scenes_seg_teacher",
                                    "scenes_naive_max", "scenes_naive_mean", "ablations/scenes_asdt_no_reliability",
                                    "ablations/scenes_asdt_no_structure"])
def test_training_step_of_every_strategy(config: str) -> None:
    method = build_method(load_config(f"configs/asdt/{config}.yaml", TINY))
    model = method.nets["model"]
    out = method.training_step("main", batch(), 0, {})
    branches = {name for name in ("student", "seg_teacher") if getattr(model, name) is not None}
    assert set(out.losses) == {"cls", "structure"} | branches
    assert all(torch.isfinite(v) for v in out.losses.values())
    sum(out.losses.values()).backward()
    assert model.classifier.weight.grad.abs().sum() > 0
    assert all(getattr(model, name)[0].weight.grad.abs().sum() > 0 for name in branches)


def test_alternative_student_follows_the_pwm_and_warmup_is_classification_only() -> None:
    method = build_method(load_config("configs/asdt/scenes_asdt.yaml", [*TINY, "method.distill_start=2"]))
    assert [method.student_target(t) for t in (0, 124, 125, 149, 150)] == [None, None, "st", "st", None]
    early = method.training_step("main", batch(), 1, {})
    assert early.losses["student"].item() == 0.0 and set(early.losses) == {"cls", "student"}
    late = method.training_step("main", batch(), 125, {})
    assert late.metrics["seg_teacher_selected"] == 1.0


def test_distill_weight_scales_the_segmentation_losses_only() -> None:
    def losses(weight: float) -> dict:
        torch.manual_seed(0)
        method = build_method(load_config("configs/asdt/scenes_rrm.yaml", [*TINY, f"method.distill_weight={weight}"]))
        data = batch()  # seeds the global RNG: the same dropout draws in both steps
        return {k: v.item() for k, v in method.training_step("main", data, 0, {}).losses.items()}

    full, quarter = losses(1.0), losses(0.25)
    assert set(full) == set(quarter) == {"cls", "seg_teacher", "structure"}
    assert quarter["cls"] == pytest.approx(full["cls"], rel=1e-6)
    for key in ("seg_teacher", "structure"):
        assert full[key] > 0 and quarter[key] == pytest.approx(0.25 * full[key], rel=1e-5)


def test_labels_made_at_half_resolution_train_at_full_resolution() -> None:
    method = build_method(load_config("configs/asdt/scenes_asdt.yaml", [*TINY, "method.knowledge.scale=0.5"]))
    for iteration in (0, 125):  # B^ct only, then B^ct and B^st
        out = method.training_step("main", batch(), iteration, {})
        assert {"student", "seg_teacher", "structure"} <= set(out.losses)
        assert all(torch.isfinite(v) for v in out.losses.values())


def test_strategy_needing_a_seg_teacher_is_a_config_error() -> None:
    cfg = load_config("configs/asdt/scenes_seg_teacher.yaml", [*TINY, "model.seg_teacher=false"])
    with pytest.raises(ConfigError, match="method.strategy"):
        build_method(cfg)


@pytest.mark.parametrize(("config", "override"), [("scenes_rrm", "model.student=true"),
                                                  ("scenes_asdt", "model.student=false")])
def test_strategy_none_goes_with_a_model_without_student(config: str, override: str) -> None:
    with pytest.raises(ConfigError, match="strategy none"):
        build_method(load_config(f"configs/asdt/{config}.yaml", [*TINY, override]))


def test_rrm_is_the_seg_branch_on_b_ct_with_rrm_energy_gate() -> None:
    method = build_method(load_config("configs/asdt/scenes_rrm.yaml", TINY))
    model = method.nets["model"]
    assert model.student is None and model.has_seg_teacher
    assert method.mcfg.structure.unlabelled_gate and method.student_target(125) is None
    with torch.no_grad():
        out = model.eval()(batch()["image"])
    assert torch.allclose(out["masks"], out["st_logits"].softmax(1)) and "s_logits" not in out


def test_multiscale_cams_average_the_scales_at_feature_size() -> None:
    method = build_method(load_config("configs/asdt/scenes_class_teacher.yaml", TINY))
    model = method.nets["model"].eval()
    image = batch()["image"]
    with torch.no_grad():
        c1 = model(image)["cams"]
        c_half = model(F.interpolate(image, size=(24, 24), mode="bilinear", align_corners=False))["cams"]
        ours = method.multiscale_cams(image, c1, (48, 48))
    ref = 0.5 * (c1 + F.interpolate(c_half, size=c1.shape[-2:], mode="bilinear", align_corners=False))
    assert ours.shape == (2, 8, 48, 48)
    ref = F.interpolate(ref, size=(48, 48), mode="bilinear", align_corners=False)
    assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-6), (ours - ref).abs().max()


@pytest.mark.parametrize("config", ["scenes_asdt", "scenes_rrm"])
def test_cli_train_and_eval_on_a_tiny_benchmark(config: str, tmp_path, capsys) -> None:
    from darkseg.cli import main
    from darkseg.data.scenes import ScenesConfig, generate_scenes

    scenes = dict(size=48, n_train=8, n_val=4, n_test=4, n_pairs_train=0, n_pairs_val=0, workers=1)
    generate_scenes(tmp_path / "scenes", ScenesConfig(**scenes), progress=False)
    run = tmp_path / "run"
    args = [f"data.root={tmp_path / 'scenes'}", *(f"data.scenes.{k}={v}" for k, v in scenes.items()), *TINY,
            "data.batch_size=4", "data.num_workers=0", "method.distill_start=1", "train.iterations=3",
            "train.val_every=3", "train.ckpt_every=3", "train.progress=false", "train.threads=1",
            "eval.inference.batch_size=4", f"output_dir={run}"]
    assert main(["train", f"configs/asdt/{config}.yaml", *args]) == 0
    assert (run / "model_final.safetensors").is_file()
    capsys.readouterr()
    assert main(["eval", f"configs/asdt/{config}.yaml", *args, "--split", "test", "--json"]) == 0
    assert '"miou"' in capsys.readouterr().out


def test_inference_only_table_5_rows_train_the_full_model(tmp_path) -> None:
    """Without CRF / mean fusion change only the inference: the same seed trains the same weights as ASDT, so their
    paired differences are the inference option alone."""
    from darkseg.cli import main
    from darkseg.data.scenes import ScenesConfig, generate_scenes

    scenes = dict(size=48, n_train=4, n_val=2, n_test=2, n_pairs_train=0, n_pairs_val=0, workers=1)
    generate_scenes(tmp_path / "scenes", ScenesConfig(**scenes), progress=False)
    args = [f"data.root={tmp_path / 'scenes'}", *(f"data.scenes.{k}={v}" for k, v in scenes.items()), *TINY,
            "data.batch_size=2", "data.num_workers=0", "method.distill_start=1", "train.iterations=2",
            "train.ckpt_every=0", "train.progress=false", "train.threads=1", "eval.inference.batch_size=2"]
    weights = {}
    for config in ("scenes_asdt", "ablations/scenes_asdt_fusion_mean", "ablations/scenes_asdt_no_crf"):
        run = tmp_path / config.replace("/", "_")
        assert main(["train", f"configs/asdt/{config}.yaml", *args, f"output_dir={run}"]) == 0
        weights[config] = load_file(run / "model_final.safetensors")
    full = weights.pop("scenes_asdt")
    for config, state in weights.items():
        assert state.keys() == full.keys() and all(torch.equal(state[k], full[k]) for k in full), config


def test_asdt_without_pydensecrf_fails_when_built_with_the_install_hint(monkeypatch):
    import sys

    from darkseg.errors import DarksegError

    monkeypatch.setitem(sys.modules, "pydensecrf", None)  # as if the crf extra were not installed
    with pytest.raises(DarksegError, match=r"pip install 'darkseg\[crf\]'"):
        build_method(load_config("configs/asdt/scenes_rrm.yaml", TINY))  # before any training step
