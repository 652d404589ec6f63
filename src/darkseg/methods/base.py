"""The interface between the engine and a method: networks, optimisers, phases, and losses from a batch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from darkseg.registry import Registry
from darkseg.schema import StrictModel

METHODS: Registry[type[Method]] = Registry("method")


@dataclass(frozen=True)
class DatasetInfo:
    """What a method needs to know about the data: classes and input normalisation."""

    class_names: tuple[str, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass
class OptimizerSpec:
    """One optimiser: its name (= phase name), parameters, and the prefixes of pretrained parameters."""

    name: str
    named_parameters: list[tuple[str, nn.Parameter]]
    pretrained_prefixes: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrainDomain:
    """One training domain of a multi-domain method: the data section it reads and the views it needs.

    ``section``: ``data`` (the config's ``data`` section, its ``train_split``) or ``target`` (``data.target``, its
    ``train_split``, with the target's own augmentation).
    """

    section: Literal["data", "target"]
    views: tuple[str, ...]


@dataclass
class StepOutput:
    """Weighted loss terms (summed by the trainer) and scalars to log (tensors are read only when logging)."""

    losses: dict[str, torch.Tensor]
    metrics: dict[str, torch.Tensor | float] = field(default_factory=dict)


class Method:
    """Base class: subclasses build ``self.nets`` in ``__init__`` and implement ``training_step``.

    ``nets`` holds every network; those named in ``external_nets`` are loaded from files (e.g. a frozen teacher)
    and are not written into checkpoints. ``deploy_net`` names the network that is evaluated and exported.
    ``load_external=False`` builds the networks without reading teacher or pretrained weights (for profiling).
    Networks are called as ``self.nets[name](...)`` so that DistributedDataParallel wrappers see every call.
    """

    name: ClassVar[str]
    Config: ClassVar[type[StrictModel]]
    deploy_net: ClassVar[str] = "model"

    def __init__(self, cfg: Any, info: DatasetInfo, load_external: bool = True) -> None:
        self.cfg = cfg
        self.info = info
        self.nets = nn.ModuleDict()
        self.external_nets: set[str] = set()

    # -- what the data loader must provide -------------------------------------------------------------
    def train_views(self) -> tuple[str, ...]:
        """Dataset views used by ``training_step`` (architecture.md data contract)."""
        raise NotImplementedError

    def input_view(self) -> str:
        """The image view the deployed network consumes (``image`` or ``dark``)."""
        return "image"

    def train_domains(self) -> dict[str, TrainDomain] | None:
        """Training domains by name, batched as ``{"name/key": value}`` (``data.loader.domain_streams``), e.g.
        labelled source and unlabelled target; None (default) = one stream of ``train_views()`` from ``data``."""
        return None

    # -- optimisation --------------------------------------------------------------------------------------
    def optimizers(self) -> list[OptimizerSpec]:
        """Default: one optimiser ``main`` over all trainable parameters of the non-external networks."""
        params = [
            (f"{n}.{k}", p)
            for n, net in self.nets.items()
            if n not in self.external_nets
            for k, p in net.named_parameters()
            if p.requires_grad
        ]
        prefixes = tuple(
            f"{n}.{p}" for n, net in self.nets.items() for p in getattr(net, "pretrained_prefixes", ())
        )
        return [OptimizerSpec("main", params, prefixes)]

    def phases(self) -> list[str]:
        """Optimiser names stepped, in order, in every iteration."""
        return [spec.name for spec in self.optimizers()]

    def training_step(self, phase: str, batch: dict, iteration: int, ctx: dict) -> StepOutput:
        raise NotImplementedError

    # -- deployment ---------------------------------------------------------------------------------------
    def deploy_model(self) -> nn.Module:
        return self.nets[self.deploy_net]

    def checkpoint_nets(self) -> list[str]:
        return [n for n in self.nets if n not in self.external_nets]

