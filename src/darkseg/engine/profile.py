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
from darkseg.methods.base import Method
from darkseg.models.factory import build_segmenter

log = logging.getLogger(__name__)


@dataclass
class ProfileReport:
    params: int
    gmac: float
    deploy_params: int
    deploy_gmac: float
    nets: dict[str, tuple[int, float]] = field(default_factory=dict)  # name -> (params, GMAC of its forward)

    def to_json(self) -> dict:
        return {"params": self.params, "gmac": self.gmac, "deploy_params": self.deploy_params,
                "deploy_gmac": self.deploy_gmac}


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _matmul_flops(a: torch.Tensor, b: torch.Tensor) -> int:
    """2 FLOPs per multiply-accumulate; a sparse left operand costs its non-zeros only (PAMR's CSR product)."""
    if a.layout == torch.sparse_csr:
        return 2 * a._nnz() * b.shape[-1]
    return 2 * a.shape[0] * a.shape[1] * b.shape[1]


def _mm(a: torch.Tensor, b: torch.Tensor, *args, **kwargs) -> int:
    return _matmul_flops(a, b)


def _addmm(bias: torch.Tensor, a: torch.Tensor, b: torch.Tensor, *args, **kwargs) -> int:
    return _matmul_flops(a, b)


_mm._get_raw = True  # type: ignore[attr-defined]  # FlopCounterMode passes tensors, not shapes
_addmm._get_raw = True  # type: ignore[attr-defined]


def count_gmac(fn: Callable[[], object], parts: dict[str, nn.Module] | None = None) -> tuple[float, dict[str, float]]:
    """Multiply-accumulates (×1e9) of the convolutions and matrix products run by ``fn``, in total and per part.

    A part's share is the counter's growth between entering and leaving its ``forward`` (parts are not nested).
    """
    aten = torch.ops.aten
    shares: dict[str, float] = {name: 0.0 for name in parts or {}}
    with FlopCounterMode(display=False, custom_mapping={aten.mm: _mm, aten.addmm: _addmm}) as counter:
        handles, start = [], {}
        for name, module in (parts or {}).items():
            handles.append(module.register_forward_pre_hook(
                lambda m, a, name=name: start.__setitem__(name, counter.get_total_flops())))
            handles.append(module.register_forward_hook(
                lambda m, a, o, name=name: shares.__setitem__(
                    name, shares[name] + counter.get_total_flops() - start[name])))
        try:
            fn()
        finally:
            for h in handles:
                h.remove()
    return counter.get_total_flops() / 2e9, {k: v / 2e9 for k, v in shares.items()}


TRAIN_BATCH = 2  # BatchNorm in training mode needs more than one value per channel (ASPP image pooling)


def synthetic_batch(method: Method, size: int, device: torch.device, n: int = TRAIN_BATCH) -> dict:
    """A batch of every view ``method`` trains on (size × size, ``n`` samples); one per training domain, keyed
    ``domain/view`` as ``data.loader.domain_streams`` yields them, for a multi-domain method."""
    domains = method.train_domains()
    if domains is None:
        return _views_batch(method.train_views(), size, method.info.num_classes, device, n)
    return {f"{name}/{k}": v for name, d in domains.items()
            for k, v in _views_batch(d.views, size, method.info.num_classes, device, n).items()}


def _views_batch(views: tuple[str, ...], size: int, num_classes: int, device: torch.device, n: int) -> dict:
    batch: dict = {}
    for v in views:
        if v in ("image", "dark", "day"):
            batch[v] = torch.rand(n, 3, size, size, device=device) if device.type != "meta" else \
                torch.empty(n, 3, size, size, device=device)
        elif v == "depth":
            batch[v] = torch.zeros(n, 1, size, size, device=device)
        elif v == "labels":
            labels = torch.zeros(n, num_classes - 1, device=device)
            if device.type != "meta":
                labels[:, 0] = 1
            batch[v] = labels
        elif v == "mask":
            batch[v] = torch.zeros(n, size, size, dtype=torch.long, device=device)
        elif v == "flow":
            batch[v] = torch.zeros(n, 2, size, size, device=device)
    return batch


def _deploy(cfg: ExperimentConfig, size: int, device: torch.device) -> tuple[int, float]:
    info = dataset_info(cfg)
    with device:
        model = build_segmenter(cfg.model, info.num_classes, info.mean, info.std, load_pretrained=False)
    model.eval()
    x = torch.empty(1, 3, size, size, device=device)
    depth = torch.zeros(1, 1, size, size, device=device) if getattr(model, "uses_depth", False) else None
    with torch.no_grad():
        gmac, _ = count_gmac(lambda: model(x, depth) if depth is not None else model(x))
    return count_params(model), gmac


def _training(
    cfg: ExperimentConfig, size: int, device: torch.device
) -> tuple[int, float, dict[str, tuple[int, float]]]:
    with device:
        method = build_method(cfg, load_external=False)
    method.nets.train()
    batch = synthetic_batch(method, size, device)

    def step() -> None:
        ctx: dict = {}
        for phase in method.phases():
            method.training_step(phase, batch, iteration=10**9, ctx=ctx)

    gmac, shares = count_gmac(step, dict(method.nets.items()))
    nets = {name: (count_params(net), shares[name] / TRAIN_BATCH) for name, net in method.nets.items()}
    return sum(p for p, _ in nets.values()), gmac / TRAIN_BATCH, nets


def profile(cfg: ExperimentConfig, size: int) -> ProfileReport:
    """Profile the deployed network and one training step (per image, all losses active) at ``size``×``size``."""
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
