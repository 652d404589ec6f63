"""Optimisers with parameter groups (pretrained vs. new layers) and iteration-based LR schedules."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Literal

import torch
from pydantic import Field, PositiveFloat
from torch import nn

from darkseg.schema import StrictModel


class LRMultipliers(StrictModel):
    """LR multipliers per parameter group (SSSS: 1 / 2 / 10 / 20; DGKD-WLSS: all 1)."""

    pretrained: float = Field(1.0, ge=0)
    pretrained_bias: float = Field(2.0, ge=0)
    new: float = Field(10.0, ge=0)
    new_bias: float = Field(20.0, ge=0)


class OptimConfig(StrictModel):
    """Optimiser of one parameter set."""

    name: Literal["sgd", "adamw"] = "sgd"
    lr: PositiveFloat = 1e-3
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(5e-4, ge=0)
    no_decay_norm_bias: bool = True
    lr_mult: LRMultipliers = LRMultipliers()


class ScheduleConfig(StrictModel):
    """LR schedule over iterations: lr = min_lr + (base − min_lr)·f(it), after a linear warm-up."""

    name: Literal["poly", "constant", "cosine"] = "poly"
    power: float = Field(0.9, gt=0)
    min_lr: float = Field(0.0, ge=0)
    warmup_iters: int = Field(0, ge=0)
    warmup_factor: float = Field(0.1, gt=0, le=1)


def _is_norm_or_bias(name: str, param: nn.Parameter) -> bool:
    return name.endswith(".bias") or param.ndim <= 1


def build_param_groups(
    named_params: Iterable[tuple[str, nn.Parameter]],
    pretrained_prefixes: tuple[str, ...],
    cfg: OptimConfig,
) -> list[dict]:
    """Split trainable parameters into pretrained/new × weight/bias groups with their LR multipliers."""
    buckets: dict[str, list[nn.Parameter]] = {"pretrained": [], "pretrained_bias": [], "new": [], "new_bias": []}
    for name, p in named_params:
        if not p.requires_grad:
            continue
        kind = "pretrained" if name.startswith(pretrained_prefixes) and pretrained_prefixes else "new"
        buckets[kind + ("_bias" if _is_norm_or_bias(name, p) else "")].append(p)
    groups = []
    for kind, params in buckets.items():
        if not params:
            continue
        no_decay = kind.endswith("_bias") and cfg.no_decay_norm_bias
        groups.append(
            {
                "params": params,
                "name": kind,
                "lr_mult": getattr(cfg.lr_mult, kind),
                "weight_decay": 0.0 if no_decay else cfg.weight_decay,
            }
        )
    return groups


def build_optimizer(groups: list[dict], cfg: OptimConfig) -> torch.optim.Optimizer:
    """SGD or AdamW over the groups; each group's initial LR is ``cfg.lr × lr_mult``."""
    for g in groups:
        g["lr"] = cfg.lr * g["lr_mult"]
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)


def lr_factor(cfg: ScheduleConfig, iteration: int, total: int, base_lr: float) -> float:
    """Multiplier of the base LR at ``iteration`` (0-based) of ``total``, including warm-up and the floor."""
    progress = min(iteration, total) / max(total, 1)
    if cfg.name == "constant":
        f = 1.0
    elif cfg.name == "poly":
        f = (1.0 - progress) ** cfg.power
    else:
        f = 0.5 * (1.0 + math.cos(math.pi * progress))
    floor = min(cfg.min_lr / base_lr, 1.0)
    f = floor + (1.0 - floor) * f
    if iteration < cfg.warmup_iters:
        alpha = iteration / cfg.warmup_iters
        f *= cfg.warmup_factor + (1.0 - cfg.warmup_factor) * alpha
    return f


class IterationScheduler:
    """Sets every group's LR to ``base_lr × lr_mult × lr_factor(it)``; its state is the iteration counter."""

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, base_lr: float, total: int) -> None:
        self.optimizer, self.cfg, self.base_lr, self.total = optimizer, cfg, base_lr, total
        self.iteration = 0
        self._apply()

    def _apply(self) -> None:
        f = lr_factor(self.cfg, self.iteration, self.total, self.base_lr)
        for g in self.optimizer.param_groups:
            g["lr"] = self.base_lr * g["lr_mult"] * f

    def step(self) -> None:
        self.iteration += 1
        self._apply()

    def current_lr(self) -> float:
        return self.base_lr * lr_factor(self.cfg, self.iteration, self.total, self.base_lr)

    def state_dict(self) -> dict:
        return {"iteration": self.iteration}

    def load_state_dict(self, state: dict) -> None:
        self.iteration = int(state["iteration"])
        self._apply()
