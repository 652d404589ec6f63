"""DANIA / DANNet: the light, adversarial and segmentation losses against direct computations, the two phases, and
the CLI (align, train with init from a source-only model, eval) on a tiny scenes day→night benchmark."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch

from darkseg.cli import main
from darkseg.config import ExperimentConfig, load_config
from darkseg.data.scenes_daynight import DayNightConfig, ensure
from darkseg.engine.runner import build_method
from darkseg.errors import ConfigError
from darkseg.methods.dania import (
    discriminator_loss,
    exposure_loss,
    generator_adv_loss,
    gram,
    ssim_loss,
    style_loss,
    total_variation_loss,
)

SEG = {"name": "deeplabv2", "rates": [1, 2], "aux_head": True,
       "backbone": {"name": "resnet", "depth": 50, "variant": "caffe", "output_stride": 8, "width": 0.0625,
                    "blocks": [1, 1, 1, 1], "freeze_bn": False}}
TINY_KW = dict(height=32, width=64, n_train=4, n_val=2, n_night_train=4, n_night_val=2, n_night_test=2, seed=1)
TINY = DayNightConfig(**TINY_KW)


def test_total_variation_eq3():
    r = torch.rand(2, 3, 5, 6, dtype=torch.float64)
    a = r.numpy()
    ref = ((a[..., :, 1:] - a[..., :, :-1]) ** 2).mean() + ((a[..., 1:, :] - a[..., :-1, :]) ** 2).mean()
    assert math.isclose(total_variation_loss(r).item(), ref, rel_tol=1e-12)


def test_exposure_eq4_patch_means_against_level():
    x = torch.rand(1, 3, 8, 8, dtype=torch.float64)
    y = x.numpy().mean(1)[0]
    patches = [y[i:i + 4, j:j + 4].mean() for i in (0, 4) for j in (0, 4)]
    ref = np.mean([abs(p - 0.3) for p in patches])
    assert math.isclose(exposure_loss(x, torch.tensor(0.3, dtype=torch.float64), 4).item(), ref, rel_tol=1e-12)


def test_style_eq5_gram_distance():
    x, n = torch.rand(2, 3, 4, 4, dtype=torch.float64), torch.rand(3, 3, dtype=torch.float64)
    refs = []
    for img in x.numpy():
        f = img.reshape(3, -1)
        refs.append(np.linalg.norm(f @ f.T / f.shape[1] - n.numpy()))
    assert math.isclose(style_loss(x, n).item(), float(np.mean(refs)), rel_tol=1e-12)
    assert torch.allclose(gram(x)[0], x[0].flatten(1) @ x[0].flatten(1).T / 16)


def test_ssim_eq6_zero_for_identity_and_grows_with_change():
    x = torch.rand(1, 3, 16, 16)
    assert ssim_loss(x, x, 3).item() < 1e-6
    assert ssim_loss(x, (x + 0.3 * torch.rand(1, 3, 16, 16)).clamp(0, 1), 3) > ssim_loss(x, x * 0.95, 3) > 0


def test_least_squares_adversarial_eq14_16_17():
    s, t = torch.randn(2, 1, 3, 3), torch.randn(2, 1, 3, 3)
    assert torch.allclose(generator_adv_loss(t), (t ** 2).mean())
    assert torch.allclose(discriminator_loss(s, t), 0.5 * (s ** 2).mean() + 0.5 * ((t - 1) ** 2).mean())


def _cfg(**method) -> ExperimentConfig:
    return ExperimentConfig.model_validate({
        "data": {"dataset": "scenes_daynight", "target": {"dataset": "scenes_daynight", "train_split": "night_train"}},
        "model": {"name": "relit", "relight": {"width": 4}, "segmenter": SEG},
        "method": {"name": "dania", "class_frequencies": [0.2, 0.2, 0.2, 0.05, 0.1, 0.15, 0.03, 0.07], **method},
        "train": {"extra_optim": {"disc": {"name": "adamw", "lr": 2.5e-4, "betas": [0.9, 0.99]}}},
    })


def _batch(g: torch.Generator) -> dict:
    flow = torch.zeros(2, 2, 32, 32)
    flow[:, 0] = 1.5
    flow[1] = float("nan")  # a pair without an alignment: no static supervision from it
    return {"source/image": torch.rand(2, 3, 32, 32, generator=g), "source/mask": torch.randint(0, 8, (2, 32, 32),
            generator=g), "target/image": 0.2 * torch.rand(2, 3, 32, 32, generator=g),
            "target/day": torch.rand(2, 3, 32, 32, generator=g), "target/flow": flow}


def test_phases_generator_then_discriminators():
    torch.manual_seed(0)
    method = build_method(_cfg())
    assert method.phases() == ["main", "disc"]
    assert set(method.train_domains()) == {"source", "target"}
    assert method.train_domains()["target"].views == ("image", "day", "flow")
    specs = {s.name: {n for n, _ in s.named_parameters} for s in method.optimizers()}
    assert all(n.startswith("model.") for n in specs["main"])
    assert {n.split(".")[0] for n in specs["disc"]} == {"d_day", "d_night"}
    ctx: dict = {}
    out = method.training_step("main", _batch(torch.Generator().manual_seed(1)), 0, ctx)
    assert set(out.losses) == {"seg", "static", "adv", "light"}
    assert 0 < float(out.metrics["static_px"]) <= 0.5  # the NaN-flow pair contributes nothing
    sum(out.losses.values()).backward()
    relight = method.nets["model"].relight
    assert relight.net[-2].weight.grad.abs().sum() > 0  # the light loss reaches the relighting network
    for p in method.nets.parameters():
        p.grad = None
    d = method.training_step("disc", {}, 0, ctx)
    assert set(d.losses) == {"d_day", "d_night"}
    sum(d.losses.values()).backward()
    assert all(p.grad is None for p in method.nets["model"].parameters())  # predictions were detached
    assert method.nets["d_day"].net[0].weight.grad.abs().sum() > 0
    assert method.deploy_model() is method.nets["model"]


def test_dannet_and_ablation_switches():
    torch.manual_seed(0)
    dannet = build_method(_cfg(align="none", light={"style": 0.0}))
    assert dannet.train_domains()["target"].views == ("image", "day")
    batch = _batch(torch.Generator().manual_seed(1))
    with_flow = dannet.training_step("main", batch, 0, {}).metrics["static_px"]
    del batch["target/flow"]
    out = dannet.training_step("main", batch, 0, {})
    assert float(out.metrics["static_px"]) == float(with_flow) > 0  # identity warp: the (NaN) flow is not used
    no_day = build_method(_cfg(day_domain=False, weights={"static": 0.0}))
    assert "d_day" not in no_day.nets and no_day.train_domains()["target"].views == ("image",)
    ctx: dict = {}
    assert set(no_day.training_step("main", batch, 0, ctx).losses) == {"seg", "adv", "light"}
    assert set(no_day.training_step("disc", {}, 0, ctx).losses) == {"d_night"}


@pytest.fixture(scope="module")
def daynight(tmp_path_factory):
    root = tmp_path_factory.mktemp("dn") / "scenes_daynight"
    ensure(root, TINY, progress=False)
    assert main(["align", "scenes_daynight", str(root), "--split", "night_train"]) == 0
    return root


def test_cli_train_from_source_only_and_eval(daynight, tmp_path, capsys):
    common = [f"data.root={daynight}", *(f"data.scenes_daynight.{k}={v}" for k, v in TINY_KW.items()),
              "data.augment.crop_size=32", "data.batch_size=2", "data.num_workers=0", "train.progress=false",
              "train.threads=1", "train.val_every=0", "train.ckpt_every=0", "eval.inference.batch_size=2"]
    seg = ["model.backbone.width=0.0625"]
    src = tmp_path / "source_only"
    assert main(["train", "configs/daynight/scenes_source_only_deeplabv2.yaml", *common, *seg,
                 "train.iterations=2", f"output_dir={src}"]) == 0
    target = [f"data.target.root={daynight}",
              *(f"data.target.scenes_daynight.{k}={v}" for k, v in TINY_KW.items()),
              "data.target.augment.crop_size=32", "model.segmenter.backbone.width=0.0625", "model.relight.width=4",
              f"method.init={src}/model_final.safetensors", "train.iterations=3"]
    run = tmp_path / "dania"
    assert main(["train", "configs/dania/scenes_dania_deeplabv2.yaml", *common, *target, f"output_dir={run}"]) == 0
    rows = list(csv.DictReader((run / "train_log.csv").open()))
    assert {"loss/static", "loss/light", "loss/adv", "disc/loss/d_day"} <= set(rows[-1])
    cfg = load_config("configs/dania/scenes_dania_deeplabv2.yaml", [*common, *target, f"output_dir={run}"])
    assert cfg.method.init is not None
    capsys.readouterr()
    assert main(["eval", "configs/dania/scenes_dania_deeplabv2.yaml", *common, *target, f"output_dir={run}"]) == 0
    assert "miou" in capsys.readouterr().out.lower()
    # profile builds a synthetic batch per training domain; the discriminators count in training only
    assert main(["profile", "configs/dania/scenes_dania_deeplabv2.yaml", "--size", "32", *common, *target, "--json"]) == 0
    prof = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert prof["params"] > prof["deploy_params"] and prof["gmac"] > prof["deploy_gmac"]


def test_eq20_warps_the_night_prediction_onto_the_day_view_and_needs_the_back_flow():
    with pytest.raises(ConfigError, match="align_flow=fine_back"):
        build_method(_cfg(align="night"))
    cfg = _cfg(align="night")
    cfg.data.target.align_flow = "fine_back"
    torch.manual_seed(0)
    method = build_method(cfg)
    batch = _batch(torch.Generator().manual_seed(1))
    out = method.training_step("main", batch, 0, {})
    # the flow shifts by 1.5 px: the last columns of the day view have no night pixel; the NaN pair none at all
    assert 0 < float(out.metrics["static_px"]) < 0.5
    out.losses["static"].backward()
    grads = [p.grad for p in method.nets["model"].segmenter.parameters() if p.grad is not None]
    assert grads and sum(g.abs().sum() for g in grads) > 0  # through the warp
