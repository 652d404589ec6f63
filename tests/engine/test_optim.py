"""Parameter groups and iteration schedules."""

import pytest
import torch
from torch import nn

from darkseg.engine.optim import (
    IterationScheduler,
    OptimConfig,
    ScheduleConfig,
    build_optimizer,
    build_param_groups,
    lr_factor,
)


def _net():
    net = nn.Module()
    net.backbone = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    net.head = nn.Conv2d(4, 2, 1)
    net.backbone[1].weight.requires_grad_(False)
    return net


def test_groups_multipliers_and_decay():
    cfg = OptimConfig(lr=0.1, weight_decay=1e-4)
    groups = build_param_groups(_net().named_parameters(), ("backbone.",), cfg)
    by_name = {g["name"]: g for g in groups}
    assert set(by_name) == {"pretrained", "pretrained_bias", "new", "new_bias"}
    assert len(by_name["pretrained"]["params"]) == 1  # conv weight; frozen BN weight skipped
    assert len(by_name["pretrained_bias"]["params"]) == 2  # conv bias + BN bias
    assert by_name["new_bias"]["weight_decay"] == 0.0 and by_name["new"]["weight_decay"] == 1e-4
    opt = build_optimizer(groups, cfg)
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs == pytest.approx({"pretrained": 0.1, "pretrained_bias": 0.2, "new": 1.0, "new_bias": 2.0})


def test_dgkd_poly_schedule_with_floor():
    """lr = 1e-4 + (0.005 − 1e-4)·(1 − it/40000)^0.9 (dgkd-official.md §6)."""
    cfg = ScheduleConfig(name="poly", power=0.9, min_lr=1e-4)
    for it in (0, 1000, 20000, 39999, 40000):
        expected = 1e-4 + (0.005 - 1e-4) * (1 - it / 40000) ** 0.9
        assert 0.005 * lr_factor(cfg, it, 40000, 0.005) == pytest.approx(expected)


def test_warmup_and_scheduler_state():
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([{"params": [p], "lr_mult": 2.0}], lr=1.0)
    cfg = ScheduleConfig(name="constant", warmup_iters=10, warmup_factor=0.1)
    sch = IterationScheduler(opt, cfg, base_lr=1.0, total=100)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.2)
    for _ in range(5):
        sch.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(2.0 * (0.1 + 0.9 * 0.5))
    state = sch.state_dict()
    sch2 = IterationScheduler(opt, cfg, 1.0, 100)
    sch2.load_state_dict(state)
    assert opt.param_groups[0]["lr"] == pytest.approx(2.0 * 0.55)
