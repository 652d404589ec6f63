"""torchrun / DistributedDataParallel helpers (NCCL on CUDA, gloo on CPU)."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from darkseg.errors import ConfigError


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: torch.device) -> DistEnv:
    """Join the process group described by torchrun's environment variables; a no-op when run alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistEnv()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(minutes=30))
    return DistEnv(rank, world, local)


def is_main_process() -> bool:
    """Rank 0 of a torchrun job, or a process running alone."""
    return int(os.environ.get("RANK", "0")) == 0


def resolve_device(spec: str, env: DistEnv) -> torch.device:
    """``auto`` → this rank's GPU if CUDA is available, else the CPU."""
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"train.device: {spec!r} requested but CUDA is not available; use 'cpu' or 'auto'")
        if spec == "cuda":
            spec = f"cuda:{env.local_rank}"
        torch.cuda.set_device(torch.device(spec))
    return torch.device(spec)


def wrap_ddp(nets: nn.ModuleDict, device: torch.device, sync_bn: bool, find_unused: bool) -> None:
    """Replace every network that has trainable parameters by its DDP wrapper (in place)."""
    for name in list(nets.keys()):
        net = nets[name]
        if not any(p.requires_grad for p in net.parameters()):
            continue
        if sync_bn:
            if device.type != "cuda":
                raise ConfigError("train.sync_bn: SyncBatchNorm needs CUDA devices; set train.sync_bn=false on CPU")
            net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
        ids = [device.index] if device.type == "cuda" else None
        nets[name] = DistributedDataParallel(net, device_ids=ids, find_unused_parameters=find_unused)


def unwrap(net: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (or the module itself)."""
    return net.module if isinstance(net, DistributedDataParallel) else net


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks (identity when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def sync_buffers(module: nn.Module, device: torch.device) -> None:
    """Give every rank rank 0's buffers (e.g. BatchNorm statistics, which differ per rank without SyncBN)."""
    if dist.is_available() and dist.is_initialized():
        for buf in unwrap(module).buffers():
            moved = buf.data.to(device)
            dist.broadcast(moved, src=0)
            buf.data.copy_(moved)


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def broadcast_flag(flag: bool, device: torch.device) -> bool:
    """True on every rank if it is True on any rank (used to stop all ranks together)."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)
