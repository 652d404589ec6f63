"""Paired seeds: with one seed, the dark baseline and a DGKD student share init and every student random draw."""

import pytest
import torch

from darkseg.config import load_config
from darkseg.engine.runner import build_method, seed_everything

TINY = ["model.backbone.width=0.0625", "model.backbone.pretrained=null", "model.aspp_channels=8", "model.decoder_channels=8", "model.skip_channels=8",
        "data.augment.crop_size=48", "train.amp=off"]
ZERO_KD = [f"method.levels.{level}.{term}=0" for level in ("mask", "layer6", "layer3")
           for term in ("weight_diff", "weight_kd", "weight_ae")]


def _step(config: str, overrides: list[str], batch: dict):
    """Build the method from seed 0 as `darkseg train` does, run one training step and backward.

    Returns the student's initial weights, its gradients, and the global RNG state after the step.
    """
    cfg = load_config(config, TINY + overrides)
    seed_everything(cfg.seed)
    method = build_method(cfg, load_external=False)
    student = method.deploy_model()
    init = {k: v.clone() for k, v in student.state_dict().items()}
    method.nets.train()
    out = method.training_step("main", batch, 0, {})
    sum(out.losses.values()).backward()
    grads = {k: p.grad.clone() for k, p in student.named_parameters() if p.grad is not None}
    return init, grads, torch.get_rng_state()


@pytest.fixture(scope="module")
def batch() -> dict:
    g = torch.Generator().manual_seed(7)
    image = torch.rand(4, 3, 48, 48, generator=g)
    labels = (torch.rand(4, 8, generator=g) < 0.3).float()
    labels[:, 0] = 1.0
    return {"image": image, "dark": image * 0.08 + 0.01 * torch.rand(4, 3, 48, 48, generator=g), "labels": labels}


@pytest.fixture(scope="module")
def baseline(batch):
    return _step("configs/dgkd_wlss/scenes_student.yaml", [], batch)


def test_zero_weight_dgkd_student_gets_the_baselines_first_gradients(batch, baseline):
    init, grads, rng = _step("configs/dgkd_wlss/scenes_dgkd.yaml", ZERO_KD, batch)
    b_init, b_grads, b_rng = baseline
    assert init.keys() == b_init.keys() and all(torch.equal(init[k], b_init[k]) for k in init)
    assert grads.keys() == b_grads.keys() and len(grads) > 10
    # equal dropout masks and stochastic-gate draws: otherwise the gradients differ
    assert all(torch.equal(grads[k], b_grads[k]) for k in grads)
    assert torch.equal(rng, b_rng)


def test_distillation_leaves_the_students_random_stream_alone(batch, baseline):
    # teacher, distillation modules and diffusion noise draw from their own generators: after a full DGKD step
    # the global RNG is where the baseline left it
    _, _, rng = _step("configs/dgkd_wlss/scenes_dgkd.yaml", [], batch)
    assert torch.equal(rng, baseline[2])


def test_diffusion_noise_is_a_function_of_seed_and_iteration():
    cfg = load_config("configs/dgkd_wlss/scenes_dgkd.yaml", TINY)
    method = build_method(cfg, load_external=False)
    draw = [torch.randn(5, generator=method.noise_generator(i, torch.device("cpu"))) for i in (3, 3, 4)]
    assert torch.equal(draw[0], draw[1]) and not torch.equal(draw[0], draw[2])
    other = build_method(load_config("configs/dgkd_wlss/scenes_dgkd.yaml", TINY + ["seed=1"]), load_external=False)
    assert not torch.equal(draw[0], torch.randn(5, generator=other.noise_generator(3, torch.device("cpu"))))


def test_dgf2_student_shares_the_baselines_initialisation():
    # DGF2's prior network and fusions initialise from their own seed: every parameter the baseline student has is
    # initialised identically, and the global RNG continues where the baseline's left it
    def build(config: str):
        cfg = load_config(config, TINY)
        seed_everything(cfg.seed)
        student = build_method(cfg, load_external=False).deploy_model()
        return student.state_dict(), torch.get_rng_state()

    base, base_rng = build("configs/dgkd_wlss/scenes_student.yaml")
    dgf2, dgf2_rng = build("configs/dgkd_wlss/scenes_dgkd_dgf2.yaml")
    assert len(dgf2) > len(base)
    assert all(torch.equal(dgf2[k], v) for k, v in base.items())
    assert torch.equal(dgf2_rng, base_rng)
