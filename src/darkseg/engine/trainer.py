"""The training loop. It knows the ``Method`` interface only: networks, optimisers, phases, named losses."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from darkseg.engine import checkpoint as ckpt
from darkseg.engine.config import TrainConfig
from darkseg.engine.distributed import DistEnv, broadcast_flag, unwrap, wrap_ddp
from darkseg.engine.logging import RunLogger
from darkseg.engine.optim import IterationScheduler, OptimConfig, build_optimizer, build_param_groups
from darkseg.errors import DarksegError, DataError
from darkseg.methods.base import Method
from darkseg.metrics import SegMetrics
from darkseg.models.weights import load_into

log = logging.getLogger(__name__)

BatchStream = Callable[[int], Iterator[dict]]
Validator = Callable[[torch.nn.Module], SegMetrics]


class NonFiniteLossError(DarksegError):
    """A loss became NaN or Inf."""


@dataclass
class TrainResult:
    iteration: int
    completed: bool
    best: dict[str, Any] | None
    final_weights: Path | None


def autocast_context(amp: str, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16/fp16 autocast for the device, or a no-op."""
    if amp == "off":
        return contextlib.nullcontext()
    if amp == "fp16" and device.type != "cuda":
        raise DarksegError("train.amp: fp16 autocast needs CUDA; use 'bf16' on CPU")
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def move_to(batch: dict, device: torch.device, channels_last: bool) -> dict:
    out = {}
    for k, v in batch.items():
        if isinstance(v, torch.Tensor):
            v = v.to(device, non_blocking=True)
            if channels_last and v.ndim == 4:
                v = v.contiguous(memory_format=torch.channels_last)
        out[k] = v
    return out


class Trainer:
    """Owns the loop: phases, AMP, clipping, schedules, logging, validation, checkpoints, resume, Ctrl-C."""

    def __init__(
        self,
        method: Method,
        cfg: TrainConfig,
        run_dir: Path,
        device: torch.device,
        env: DistEnv,
        batches: BatchStream,
        batch_size: int,
        validate: Validator | None = None,
    ) -> None:
        self.method, self.cfg, self.run_dir, self.device, self.env = method, cfg, run_dir, device, env
        self.batches, self.batch_size, self.validate = batches, batch_size, validate
        self.ckpt_dir = run_dir / "checkpoints"
        self.iteration = 0
        self.best: dict[str, Any] | None = None
        self.skipped: list[str] = []
        self._stop_requested = False
        self._saved_at = -1

        method.nets.to(device)
        if cfg.channels_last and device.type == "cpu":
            # Measured: oneDNN's AVX-512 1x1-convolution weight gradient segfaults on channels-last tensors with
            # 2 threads (torch 2.13 CPU); channels-last is a GPU optimisation anyway.
            raise DarksegError("train.channels_last: not supported on CPU (oneDNN crashes in the backward pass); "
                               "use it on CUDA only")
        if cfg.channels_last:
            method.nets.to(memory_format=torch.channels_last)
        specs = method.optimizers()
        phases = method.phases()
        unknown = [p for p in phases if p not in {s.name for s in specs}]
        if unknown:
            raise DarksegError(f"method {method.name!r} declares phases without optimisers: {unknown}")
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict[str, IterationScheduler] = {}
        for spec in specs:
            ocfg = self._optim_cfg(spec.name)
            groups = build_param_groups(spec.named_parameters, spec.pretrained_prefixes, ocfg)
            if not groups:
                raise DarksegError(f"optimiser {spec.name!r} of method {method.name!r} has no trainable parameters")
            opt = build_optimizer(groups, ocfg)
            self.optimizers[spec.name] = opt
            self.schedulers[spec.name] = IterationScheduler(opt, cfg.schedule, ocfg.lr, cfg.iterations)
        self.scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
        if cfg.compile:
            for net in method.nets.values():
                net.compile()
        if env.enabled:
            wrap_ddp(method.nets, device, cfg.sync_bn, cfg.find_unused_parameters)

    def _optim_cfg(self, name: str) -> OptimConfig:
        if name == "main":
            return self.cfg.optim
        if name not in self.cfg.extra_optim:
            raise DarksegError(
                f"train.extra_optim.{name}: the method needs an optimiser config for phase {name!r}"
            )
        return self.cfg.extra_optim[name]

    # -- state ----------------------------------------------------------------------------------------------
    def _weights(self) -> dict[str, torch.Tensor]:
        out = {}
        for name in self.method.checkpoint_nets():
            for k, v in unwrap(self.method.nets[name]).state_dict().items():
                out[f"{name}.{k}"] = v
        return out

    def _trainer_state(self) -> dict[str, Any]:
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available() and self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "iteration": self.iteration,
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "scaler": self.scaler.state_dict(),
            "rng": rng,
            "best": json.dumps(self.best),
        }

    def save(self, name: str, update_last: bool = True) -> Path | None:
        """Write a checkpoint (rank 0); periodic ones are pruned to ``keep_last``."""
        self._saved_at = self.iteration
        if not self.env.is_main:
            return None
        meta = {
            "iteration": self.iteration,
            "method": self.method.name,
            "deploy_net": self.method.deploy_net,
            "nets": self.method.checkpoint_nets(),
        }
        path = ckpt.save_checkpoint(
            self.ckpt_dir, name, self._weights(), self._trainer_state(), meta,
            keep_last=self.cfg.keep_last, update_last=update_last,
        )
        return path

    def resume(self, path: Path) -> None:
        """Restore networks, optimisers, schedules, scaler, RNG and iteration from a checkpoint directory."""
        weights, state, meta = ckpt.load_checkpoint(path)
        if meta.get("method") != self.method.name:
            raise DarksegError(f"{path}: checkpoint of method {meta.get('method')!r}, config says {self.method.name!r}")
        for name in self.method.checkpoint_nets():
            load_into(unwrap(self.method.nets[name]), ckpt.prefixed(weights, name), f"{path} [{name}]")
        for k, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][k])
        for k, sch in self.schedulers.items():
            sch.load_state_dict(state["schedulers"][k])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
        self.iteration = int(state["iteration"])
        self.best = json.loads(state["best"])
        log.info("resumed from %s at iteration %d", path, self.iteration)

    # -- loop -----------------------------------------------------------------------------------------------
    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self._stop_requested:
            raise KeyboardInterrupt
        self._stop_requested = True
        print("\ninterrupt: finishing this iteration and writing a checkpoint (press Ctrl-C again to abort)",
              file=sys.stderr)

    def request_stop(self) -> None:
        """Stop after the current iteration, writing a checkpoint (used by the Ctrl-C handler)."""
        self._stop_requested = True

    def _step(self, batch: dict, ctx: dict) -> dict[str, torch.Tensor | float]:
        """One iteration: every phase's forward, backward and optimiser step; returns detached scalars."""
        scalars: dict[str, torch.Tensor | float] = {}
        for phase in self.method.phases():
            opt = self.optimizers[phase]
            opt.zero_grad(set_to_none=True)
            with autocast_context(self.cfg.amp, self.device):
                out = self.method.training_step(phase, batch, self.iteration, ctx)
            if not out.losses:
                raise DarksegError(f"method {self.method.name!r} returned no loss for phase {phase!r}")
            total = sum(out.losses.values())
            if not bool(torch.isfinite(total.detach())):
                self._raise_non_finite(out.losses)
            self.scaler.scale(total).backward()
            prefix = "" if phase == "main" else f"{phase}/"
            if self.cfg.grad_clip:
                self.scaler.unscale_(opt)
                params = [p for g in opt.param_groups for p in g["params"]]
                scalars[f"{prefix}grad_norm"] = torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
            self.scaler.step(opt)
            self.scaler.update()
            self.schedulers[phase].step()
            scalars.update({f"{prefix}loss/{k}": v.detach() for k, v in out.losses.items()})
            scalars[f"{prefix}loss/total"] = total.detach()
            scalars[f"{prefix}lr"] = self.schedulers[phase].current_lr()
            scalars.update({f"{prefix}{k}": v for k, v in out.metrics.items()})
        return scalars

    def _raise_non_finite(self, losses: dict[str, torch.Tensor]) -> None:
        bad = {k: float(v.detach()) for k, v in losses.items() if not bool(torch.isfinite(v.detach()))}
        last = ckpt.latest_checkpoint(self.ckpt_dir)
        name, value = next(iter(bad.items()))
        raise NonFiniteLossError(
            f"loss {name!r} is {value} at iteration {self.iteration}; training stopped, "
            f"last good checkpoint: {last or 'none'}; lower train.optim.lr or set train.grad_clip"
        )

    def _note_skipped(self, skipped: list[str]) -> None:
        for msg in skipped:
            log.warning("skipped sample: %s", msg)
        self.skipped += skipped

    def _run_validation(self) -> None:
        if self.validate is None:
            return
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            model = unwrap(self.method.deploy_model())
            metrics = self.validate(model)
            self.method.nets.train()
        self._logger.log_val(self.iteration, {"miou": metrics.miou, "pixacc": metrics.pixacc})
        log.info("iteration %d: val mIoU %.2f PixAcc %.2f", self.iteration, metrics.miou, metrics.pixacc)
        if self.best is None or metrics.miou > self.best["miou"]:
            self.best = {"iteration": self.iteration, "miou": metrics.miou, "pixacc": metrics.pixacc}
            if self.env.is_main:
                deploy = unwrap(self.method.deploy_model()).state_dict()
                ckpt.save_weights(self.run_dir / "model_best.safetensors", deploy, {"iteration": str(self.iteration)})

    def fit(self, resume: bool = False, stop_at: int | None = None) -> TrainResult:
        """Train to ``cfg.iterations`` (or stop after iteration ``stop_at``), resuming from the last checkpoint."""
        cfg = self.cfg
        if resume:
            last = ckpt.latest_checkpoint(self.ckpt_dir)
            if last is None:
                log.info("--resume: no checkpoint in %s, starting from scratch", self.ckpt_dir)
            else:
                self.resume(last)
        self._logger = RunLogger(self.run_dir, self.env.is_main, resume_from=self.iteration)
        end = min(cfg.iterations, stop_at) if stop_at else cfg.iterations
        self.method.nets.train()
        previous = signal.signal(signal.SIGINT, self._on_sigint) if self._can_handle_signals() else None
        bar = tqdm(
            total=cfg.iterations, initial=self.iteration, disable=not (cfg.progress and self.env.is_main),
            dynamic_ncols=True, mininterval=1.0 if sys.stderr.isatty() else 30.0, desc="train",
        )
        try:
            stream = self.batches(self.iteration)
            t0, seen = time.perf_counter(), 0
            while self.iteration < end:
                try:
                    batch = next(stream)
                except DataError:
                    self.save(f"iter_{self.iteration:07d}")
                    raise
                self._note_skipped(batch.pop("_skipped", []))
                scalars = self._step(move_to(batch, self.device, cfg.channels_last), ctx={}) if batch else {}
                self.iteration += 1
                seen += self.batch_size * self.env.world_size
                bar.update(1)
                if self.iteration % cfg.log_every == 0 or self.iteration == end:
                    rate = seen / max(time.perf_counter() - t0, 1e-9)
                    values = {k: float(v) for k, v in scalars.items()}
                    values["images_per_s"] = rate
                    self._logger.log_train(self.iteration, values)
                    bar.set_postfix(loss=f"{values.get('loss/total', float('nan')):.4f}", img_s=f"{rate:.1f}")
                    t0, seen = time.perf_counter(), 0
                if cfg.val_every and self.iteration % cfg.val_every == 0 and self.iteration < cfg.iterations:
                    self._run_validation()
                stop = broadcast_flag(self._stop_requested, self.device)
                if stop or (cfg.ckpt_every and self.iteration % cfg.ckpt_every == 0):
                    self.save(f"iter_{self.iteration:07d}")
                if stop:
                    break
            completed = self.iteration >= cfg.iterations
            if not completed and self._saved_at != self.iteration:
                self.save(f"iter_{self.iteration:07d}")
            if self.skipped:
                log.warning("skipped %d unreadable samples (data.on_error=skip): %s", len(self.skipped),
                            "; ".join(self.skipped[:5]) + (" …" if len(self.skipped) > 5 else ""))
            final = None
            if completed:
                self._run_validation()
                self.save("final")
                final = self._export()
            return TrainResult(self.iteration, completed, self.best, final)
        finally:
            bar.close()
            self._logger.close()
            if previous is not None:
                signal.signal(signal.SIGINT, previous)

    def _export(self) -> Path | None:
        """Write the deployed network's weights (no training-only parts) next to the run's config."""
        if not self.env.is_main:
            return None
        path = self.run_dir / "model_final.safetensors"
        ckpt.save_weights(path, unwrap(self.method.deploy_model()).state_dict(), {"iteration": str(self.iteration)})
        return path

    @staticmethod
    def _can_handle_signals() -> bool:
        import threading

        return threading.current_thread() is threading.main_thread()
