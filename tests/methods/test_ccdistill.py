"""CCDistill method: Eq. 8 terms and Table 3 ablation configs, deployed M_n, gradient routing, seeding, init."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from darkseg.config import load_config
from darkseg.engine.runner import build_method
from darkseg.errors import CheckpointError, ConfigError
from darkseg.rng import own_rng
from darkseg.models.factory import build_segmenter

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "ccdistill"
TINY = ["model.backbone.blocks=[1,1,1,1]", "model.backbone.width=0.125"]


def _method(name: str = "scenes_ccdistill", *overrides: str, load_external: bool = False):  # noqa: ANN202
    return build_method(load_config(CONFIGS / f"{name}.yaml", [*TINY, *overrides]), load_external=load_external)


def _batch(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"source/image": torch.rand(2, 3, 64, 64, generator=g),
            "source/mask": torch.randint(0, 8, (2, 64, 64), generator=g),
            "target/image": 0.3 * torch.rand(2, 3, 64, 64, generator=g),
            "target/day": torch.rand(2, 3, 64, 64, generator=g)}


ABLATIONS = {  # config -> (loss terms, logged CDC parts)
    "scenes_ccdistill": ({"cdc", "cds"}, {"illumination", "inherent", "js"}),
    "scenes_no_cdc": ({"cds"}, set()),
    "scenes_no_project_head": ({"cdc", "cds"}, {"illumination", "inherent", "js"}),
    "scenes_no_js": ({"cdc", "cds"}, {"illumination", "inherent"}),
    "scenes_no_illumination": ({"cdc", "cds"}, {"inherent", "js"}),
    "scenes_no_inherent": ({"cdc", "cds"}, {"illumination", "js"}),
    "scenes_no_cds": ({"cdc"}, {"illumination", "inherent", "js"}),
    "scenes_no_lab": ({"cdc", "cds"}, {"illumination", "inherent", "js"}),
    "scenes_no_cdc_cds": (set(), set()),
}


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_table3_configs_train_the_terms_they_name(name: str) -> None:
    method = _method(name)
    out = method.training_step("main", _batch(), 0, {})
    terms, parts = ABLATIONS[name]
    assert set(out.losses) == {"seg_night", "seg_day", "aux", "pseudo"} | terms
    assert {k[4:] for k in out.metrics if k.startswith("cdc_")} == parts
    assert ("head" in method.nets) == ("cdc" in terms and name != "scenes_no_project_head")
    sum(out.losses.values()).backward()
    assert all(torch.isfinite(v) for v in out.losses.values())
    if name == "scenes_no_lab":  # S_n is S_d: both segmenters see the same source image
        assert torch.equal(method.source_night(_batch()["source/image"], _batch()["target/image"], 0),
                           _batch()["source/image"])


def test_deployed_network_is_m_n_alone() -> None:
    method = _method()
    assert method.deploy_model() is method.nets["night"]
    cfg = load_config(CONFIGS / "scenes_ccdistill.yaml", TINY)
    plain = build_segmenter(cfg.model, 8, cfg.data.mean, cfg.data.std, load_pretrained=False)
    assert method.deploy_model().state_dict().keys() == plain.state_dict().keys()
    assert set(method.checkpoint_nets()) == {"night", "day", "head"}
    assert set(method.train_domains()) == {"source", "target"}
    assert method.train_domains()["target"].views == ("image", "day")


def test_pseudo_loss_trains_m_n_only_and_seg_losses_train_each_net() -> None:
    method = _method()
    out = method.training_step("main", _batch(), 0, {})
    out.losses["pseudo"].backward(retain_graph=True)
    grad = {n: sum(p.grad.abs().sum() for p in net.parameters() if p.grad is not None)
            for n, net in method.nets.items()}
    assert grad["day"] == 0 and grad["night"] > 0
    method.nets.zero_grad(set_to_none=True)
    out.losses["seg_day"].backward()
    assert all(p.grad is None for p in method.nets["night"].parameters())


def test_m_d_and_lab_draws_leave_the_global_rng_alone() -> None:
    method = _method()
    s, t = _batch()["source/image"], _batch()["target/image"]
    state = torch.get_rng_state()
    first = method.source_night(s, t, 3)
    with own_rng(7, s.device):
        torch.rand(3)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(method.source_night(s, t, 3), first)
    # two runs from the same global seed give the same losses (M_d dropout and LAB picks are seeded)
    losses = []
    for _ in range(2):
        torch.manual_seed(0)
        losses.append({k: v.item() for k, v in method.training_step("main", _batch(), 5, {}).losses.items()})
    assert losses[0] == losses[1]


def test_init_loads_the_same_weights_into_both_segmenters(tmp_path: Path) -> None:
    donor = _method().nets["night"]
    with torch.no_grad():
        for p in donor.parameters():
            p.add_(0.5)
    path = tmp_path / "source_only.safetensors"
    save_file({k: v.contiguous() for k, v in donor.state_dict().items()}, str(path))
    method = _method("scenes_ccdistill", f"method.init={path}", load_external=True)
    for name in ("day", "night"):
        for (k, v), w in zip(method.nets[name].state_dict().items(), donor.state_dict().values()):
            assert torch.equal(v, w), (name, k)
    bad = tmp_path / "bad.safetensors"
    save_file({"foo": torch.zeros(1)}, str(bad))
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        _method("scenes_ccdistill", f"method.init={bad}", load_external=True)


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match="data.target.dataset"):
        _method("scenes_ccdistill", "data.target.dataset=scenes")
    with pytest.raises(ConfigError, match="method.feature"):
        _method("scenes_ccdistill", "method.feature=nope")
    with pytest.raises(ConfigError, match="method.class_frequencies"):
        _method("scenes_ccdistill", "method.class_frequencies=[0.5,0.5]")
