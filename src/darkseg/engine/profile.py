"""Parameters and GMAC of a config (the deployed network and the whole training graph), and the wall time of its
training iteration on a synthetic batch (``StepBench``, used by the benchmarks).

GMAC = ``torch.utils.flop_counter.FlopCounterMode`` FLOPs / 2 / 1e9 (it counts 2 FLOPs per multiply-accumulate of
convolutions and matrix products; BN, activations and interpolation are not counted). Counting runs on the meta
device (no memory, no compute) and falls back to real CPU tensors for graphs with data-dependent operations.
"""

from __future__ import annotations

import logging
import resource
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from darkseg.config import ExperimentConfig, load_config
from darkseg.engine.optim import build_optimizer, build_param_groups
from darkseg.engine.runner import build_method, dataset_info
from darkseg.engine.trainer import autocast_context
from darkseg.methods.base import Method
from darkseg.models.factory import build_segmenter
from darkseg.precision import effective_amp, recipe_amp

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


def bench_config(path: str, device: str, overrides: list[str] | None = None) -> tuple[ExperimentConfig, list[str]]:
    """``path`` with ``overrides`` as it trains on ``device``, and the overrides added to make it run there.

    The recipe's precision maps to the device (``train.amp`` and ``method.<section>.amp`` fp16 → bf16 off CUDA); at batch
    1 the ASPP's BatchNorm after image pooling (one value per channel) keeps its running statistics (same cost).
    """
    base = [*(overrides or []), f"train.device={device}"]
    cfg = load_config(path, base)
    dev = torch.device(device).type
    added = []
    if recipe_amp(cfg.train.amp, dev) != cfg.train.amp:
        added.append(f"train.amp={recipe_amp(cfg.train.amp, dev)}")
    for name, section in cfg.method:  # a method's own precision keys, e.g. method.teacher.amp
        mode = getattr(section, "amp", None)
        if isinstance(mode, str) and recipe_amp(mode, dev) != mode:
            added.append(f"method.{name}.amp={recipe_amp(mode, dev)}")
    if cfg.data.batch_size == 1 and getattr(cfg.model, "freeze_aspp_bn_stats", True) is False:
        added.append("model.freeze_aspp_bn_stats=true")
    return (load_config(path, base + added) if added else cfg), added


@dataclass
class StepTiming:
    """Seconds per full training iteration, forward seconds of the timed parts, peak memory (MiB) and settings."""

    seconds: list[float]
    forward: dict[str, list[float]]
    peak_mib: float
    batch: int
    crop: int
    amp: str

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def to_json(self) -> dict:
        return {"s_per_iter": self.median, "seconds": self.seconds, "peak_mib": self.peak_mib, "batch": self.batch,
                "crop": self.crop, "amp": self.amp,
                "forward": {k: statistics.median(v) for k, v in self.forward.items() if v}}


class StepBench:
    """A config's training iteration as the trainer runs it (every phase: forward under autocast, losses, backward,
    optimiser step; channels-last and ``torch.compile`` per ``train``) on a synthetic batch at its batch and crop.

    External weights are not loaded (random teacher / backbone: the cost does not depend on them). Image-level
    labels are random multi-hot vectors; all losses are active (a late iteration).
    """

    def __init__(self, cfg: ExperimentConfig, compile_backend: str = "inductor") -> None:
        self.cfg = cfg
        self.device = torch.device("cuda" if cfg.train.device == "auto" and torch.cuda.is_available() else
                                   "cpu" if cfg.train.device == "auto" else cfg.train.device)
        torch.manual_seed(cfg.seed)
        self.method = build_method(cfg, load_external=False)
        self.method.nets.to(self.device).train()
        if cfg.train.channels_last:
            self.method.nets.to(memory_format=torch.channels_last)
        self.optimizers = {}
        for spec in self.method.optimizers():
            ocfg = cfg.train.optim if spec.name == "main" else cfg.train.extra_optim[spec.name]
            self.optimizers[spec.name] = build_optimizer(
                build_param_groups(spec.named_parameters, spec.pretrained_prefixes, ocfg), ocfg)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.train.amp == "fp16")
        if cfg.train.compile:
            for net in self.method.nets.values():
                net.compile(backend=compile_backend)
        self.batch = self._batch()

    def _batch(self) -> dict:
        cfg, dev = self.cfg, self.device
        b = cfg.data.batch_size
        batch = synthetic_batch(self.method, cfg.data.augment.crop_size, dev, b)
        gen = torch.Generator().manual_seed(cfg.seed)
        for key in [k for k in batch if k.rsplit("/", 1)[-1] == "labels"]:
            batch[key] = (torch.rand(b, self.method.info.num_classes - 1, generator=gen) > 0.7).float().to(dev)
        if cfg.train.channels_last:
            batch = {k: v.contiguous(memory_format=torch.channels_last) if torch.is_tensor(v) and v.ndim == 4 else v
                     for k, v in batch.items()}
        return batch

    @property
    def amp(self) -> str:
        """The precision the student step runs in here (bf16 without native support on a CPU is float32)."""
        return effective_amp(self.cfg.train.amp, self.device.type)

    def step(self) -> None:
        """One training iteration (all phases)."""
        ctx: dict = {}
        for phase in self.method.phases():
            opt = self.optimizers[phase]
            opt.zero_grad(set_to_none=True)
            with autocast_context(self.cfg.train.amp, self.device):
                out = self.method.training_step(phase, self.batch, 10**9, ctx)
            self.scaler.scale(sum(out.losses.values())).backward()
            self.scaler.step(opt)
            self.scaler.update()

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextmanager
    def _timed_forwards(self, parts: dict[str, nn.Module], record: dict[str, list[float]]) -> Iterator[None]:
        """Adds each call's forward seconds of ``parts`` (not nested in one another) to ``record``."""
        start: dict[str, float] = {}

        def pre(name: str) -> Callable:
            def hook(*_: object) -> None:
                self._sync()
                start[name] = time.perf_counter()
            return hook

        def post(name: str) -> Callable:
            def hook(*_: object) -> None:
                self._sync()
                record[name][-1] += time.perf_counter() - start[name]
            return hook

        handles = [h for name, m in parts.items()
                   for h in (m.register_forward_pre_hook(pre(name)), m.register_forward_hook(post(name)))]
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def run(self, iters: int, warmup: int, parts: dict[str, nn.Module] | None = None) -> StepTiming:
        """Times ``iters`` iterations after ``warmup``; ``parts`` (default: every net) get their forward time."""
        parts = dict(self.method.nets.items()) if parts is None else parts
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        for _ in range(warmup):
            self.step()
        seconds: list[float] = []
        forward: dict[str, list[float]] = {name: [] for name in parts}
        with self._timed_forwards(parts, forward):
            for _ in range(iters):
                for v in forward.values():
                    v.append(0.0)
                self._sync()
                t0 = time.perf_counter()
                self.step()
                self._sync()
                seconds.append(time.perf_counter() - t0)
        peak = (torch.cuda.max_memory_allocated(self.device) / 2**20 if self.device.type == "cuda"
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        return StepTiming(seconds, forward, peak, self.cfg.data.batch_size, self.cfg.data.augment.crop_size, self.amp)
