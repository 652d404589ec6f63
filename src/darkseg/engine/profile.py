"""Parameters and GMAC of a config: the deployed network and the whole training graph.

GMAC = ``torch.utils.flop_counter.FlopCounterMode`` FLOPs / 2 / 1e9 (it counts 2 FLOPs per multiply-accumulate of
convolutions and matrix products; BN, activations and interpolation are not counted). Counting runs on the meta
device (no memory, no compute) and falls back to real CPU tensors for graphs with data-dependent operations.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from darkseg.config import ExperimentConfig
from darkseg.engine.runner import build_method, dataset_info
from darkseg.models.factory import build_segmenter

log = logging.getLogger(__name__)


@dataclass
class ProfileReport:
    params: int
    gmac: float
    deploy_params: int
    deploy_gmac: float
    nets: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"params": self.params, "gmac": self.gmac, "deploy_params": self.deploy_params,
                "deploy_gmac": self.deploy_gmac}


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_gmac(fn: Callable[[], object]) -> float:
    """Multiply-accumulates (×1e9) of the convolutions and matrix products run by ``fn``."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 2 / 1e9


def _synthetic_batch(views: tuple[str, ...], size: int, num_classes: int, device: torch.device) -> dict:
    batch: dict = {}
    for v in views:
        if v in ("image", "dark"):
            batch[v] = torch.rand(1, 3, size, size, device=device) if device.type != "meta" else \
                torch.empty(1, 3, size, size, device=device)
        elif v == "depth":
            batch[v] = torch.zeros(1, 1, size, size, device=device)
        elif v == "labels":
            labels = torch.zeros(1, num_classes - 1, device=device)
            if device.type != "meta":
                labels[0, 0] = 1
            batch[v] = labels
        elif v == "mask":
            batch[v] = torch.zeros(1, size, size, dtype=torch.long, device=device)
    return batch


def _deploy(cfg: ExperimentConfig, size: int, device: torch.device) -> tuple[int, float]:
    info = dataset_info(cfg)
    with device:
        model = build_segmenter(cfg.model, info.num_classes, info.mean, info.std, load_pretrained=False)
    model.eval()
    x = torch.empty(1, 3, size, size, device=device)
    depth = torch.zeros(1, 1, size, size, device=device) if getattr(model, "uses_depth", False) else None
    with torch.no_grad():
        gmac = count_gmac(lambda: model(x, depth) if depth is not None else model(x))
    return count_params(model), gmac


def _training(cfg: ExperimentConfig, size: int, device: torch.device) -> tuple[int, float, dict[str, int]]:
    with device:
        method = build_method(cfg, load_external=False)
    method.nets.train()
    batch = _synthetic_batch(method.train_views(), size, method.info.num_classes, device)

    def step() -> None:
        ctx: dict = {}
        for phase in method.phases():
            method.training_step(phase, batch, iteration=10**9, ctx=ctx)

    gmac = count_gmac(step)
    nets = {name: count_params(net) for name, net in method.nets.items()}
    return sum(nets.values()), gmac, nets


def profile(cfg: ExperimentConfig, size: int) -> ProfileReport:
    """Profile the deployed network and one training step (batch 1, all losses active) at ``size``×``size``."""
    results = []
    for fn in (_deploy, _training):
        try:
            results.append(fn(cfg, size, torch.device("meta")))
        except (NotImplementedError, RuntimeError) as err:
            log.info("meta-device counting not possible (%s); counting on CPU tensors", err.__class__.__name__)
            with torch.no_grad() if fn is _deploy else torch.enable_grad():
                results.append(fn(cfg, size, torch.device("cpu")))
    (deploy_params, deploy_gmac), (params, gmac, nets) = results
    return ProfileReport(params, gmac, deploy_params, deploy_gmac, nets)
