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
from darkseg.engine.distributed import DistEnv, broadcast_flag, sync_buffers, unwrap, wrap_ddp
from darkseg.engine.logging import RunLogger
from darkseg.engine.optim import IterationScheduler, OptimConfig, build_optimizer, build_param_groups
from darkseg.errors import CheckpointError, ConfigError, DarksegError, DataError
from darkseg.methods.base import Method
from darkseg.metrics import SegMetrics
from darkseg.models.weights import load_into
from darkseg.precision import effective_amp

log = logging.getLogger(__name__)

BatchStream = Callable[[int], Iterator[dict]]
Validator = Callable[[torch.nn.Module], SegMetrics]


_NON_FINITE_ADVICE = "to lower train.optim.lr or set train.grad_clip, train again with --overwrite or another output_dir"


class NonFiniteLossError(DarksegError):
    """A loss, or the weights, became NaN or Inf."""


@dataclass
class TrainResult:
    iteration: int
    completed: bool
    best: dict[str, Any] | None
    final_weights: Path | None
    interrupted: int | None = None  # the signal number that stopped the run (SIGINT, SIGTERM), if any


def autocast_context(amp: str, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16/fp16 autocast for the device, or a no-op (also for bf16 on a CPU without native bfloat16)."""
    amp = effective_amp(amp, device.type)
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
        self._stop_signal: int | None = None
        self._saving = False
        self._abort_pending = False
        self._saved_at = -1
        self._resumed_from: str | None = None
        self._last_losses: list[torch.Tensor] = []

        method.nets.to(device)
        method.nets.train()
        self.min_batch = 2 if any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.training
                                  for m in method.nets.modules()) else 1
        if batch_size < self.min_batch:
            raise ConfigError(f"data.batch_size: {batch_size} is too small for training BatchNorm layers "
                              f"(they need {self.min_batch} or more samples per batch and process); use a larger batch")
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
        """Write a checkpoint (rank 0); periodic ones are pruned to ``keep_last``.

        Weights with NaN/Inf are never written: training stops naming the last good checkpoint instead. A second
        Ctrl-C during the write takes effect once the checkpoint is complete.
        """
        self._saved_at = self.iteration
        if not self.env.is_main:
            return None
        weights = self._weights()
        bad = ckpt.non_finite(weights)
        if bad:
            raise NonFiniteLossError(
                f"weights {bad[0]!r} (and {len(bad) - 1} more) hold NaN/Inf after iteration {self.iteration}; "
                f"training stopped, {self._last_good_hint()}; {_NON_FINITE_ADVICE}"
            )
        loss = float(sum(float(v) for v in self._last_losses)) if self._last_losses else None
        meta = {
            "iteration": self.iteration,
            "method": self.method.name,
            "deploy_net": self.method.deploy_net,
            "nets": self.method.checkpoint_nets(),
            "loss": loss,
        }
        self._saving = True
        try:
            path = ckpt.save_checkpoint(
                self.ckpt_dir, name, weights, self._trainer_state(), meta,
                keep_last=self.cfg.keep_last, update_last=update_last,
            )
        finally:
            self._saving = False
        if self._abort_pending:
            raise KeyboardInterrupt
        return path

    def _last_good_hint(self) -> str:
        last = ckpt.latest_checkpoint(self.ckpt_dir)
        if last is None:
            return "no checkpoint was written before"
        return f"last good checkpoint: {last} (--resume {last} continues from it with the same config)"

    def resume(self, path: Path | None = None) -> Path | None:
        """Restore the run from ``path``, or from the newest complete, loadable checkpoint of the run.

        Damaged, incomplete or non-finite checkpoints are skipped with a warning naming each and why. Returns the
        checkpoint used (None: the run has no checkpoint; an error if it has some but none can be used).
        """
        if path is not None:
            path = Path(path)
            if path.resolve().parent not in (self.ckpt_dir.resolve(), (self.ckpt_dir / "superseded").resolve()):
                raise CheckpointError(f"{path}: not a checkpoint of this run; --resume takes a directory under "
                                      f"{self.ckpt_dir}")
            weights, state, meta = ckpt.load_resumable(path)
            self._restore(path, weights, state, meta)
            if self.env.is_main:
                ckpt.set_aside(self.ckpt_dir, ckpt.newer_than(self.ckpt_dir, path), f"resuming from {path.name}")
            return path
        candidates, notes = ckpt.checkpoint_candidates(self.ckpt_dir)
        for note in notes:
            log.warning("resume: %s", note)
        skipped: list[Path] = []
        for cand in candidates:
            try:
                weights, state, meta = ckpt.load_resumable(cand)
            except CheckpointError as err:
                log.warning("resume: skipped %s: %s", cand.name, err)
                skipped.append(cand)
                continue
            self._restore(cand, weights, state, meta)
            if self.env.is_main:  # out of the way of pruning and of later resumes, but kept
                ckpt.set_aside(self.ckpt_dir, skipped, f"resuming from {cand.name}")
            return cand
        if skipped:
            raise CheckpointError(f"{self.ckpt_dir}: no usable checkpoint ({', '.join(p.name for p in skipped)} "
                                  "skipped, see the warnings above); start again with --overwrite or set another "
                                  "output_dir")
        return None

    def _restore(self, path: Path, weights: dict, state: dict, meta: dict) -> None:
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
        self._saved_at = self.iteration
        self._resumed_from = path.name
        log.info("resumed from %s at iteration %d", path, self.iteration)

    # -- loop -----------------------------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._stop_signal is not None:
            if self._saving:  # never leave a half-written checkpoint: abort once it is complete
                self._abort_pending = True
                return
            raise KeyboardInterrupt
        self._stop_signal = signum
        print(f"\n{signal.Signals(signum).name}: finishing this iteration and writing a checkpoint "
              "(signal again to abort without it)", file=sys.stderr)

    def request_stop(self, signum: int = signal.SIGINT) -> None:
        """Stop after the current iteration, writing a checkpoint (what SIGINT/SIGTERM do)."""
        self._stop_signal = signum

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
        name, value = next(iter(bad.items()))
        raise NonFiniteLossError(
            f"loss {name!r} is {value} at iteration {self.iteration + 1}; training stopped, "
            f"{self._last_good_hint()}; {_NON_FINITE_ADVICE}"
        )

    def _note_skipped(self, skipped: list[str]) -> None:
        for msg in skipped:
            log.warning("skipped sample: %s", msg)
        self.skipped += skipped

    def _val_due(self, iteration: int) -> bool:
        return iteration >= self.cfg.iterations or bool(self.cfg.val_every and iteration % self.cfg.val_every == 0)

    def _run_validation(self) -> None:
        """Validate at this iteration unless the run's ``val_log.csv`` already has it (a resumed run)."""
        if self.validate is None or broadcast_flag(self._logger.has_val(self.iteration), self.device):
            return
        if self.env.enabled:
            sync_buffers(self.method.deploy_model(), self.device)  # rank 0's BN statistics, as in the checkpoint
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            model = unwrap(self.method.deploy_model())
            metrics = self.validate(model)
            self.method.nets.train()
        if self.best is None or metrics.miou > self.best["miou"]:
            self.best = {"iteration": self.iteration, "miou": metrics.miou, "pixacc": metrics.pixacc}
            if self.env.is_main:
                deploy = unwrap(self.method.deploy_model()).state_dict()
                ckpt.save_weights(self.run_dir / "model_best.safetensors", deploy, {"iteration": str(self.iteration)})
        self._logger.log_val(self.iteration, {"miou": metrics.miou, "pixacc": metrics.pixacc})
        log.info("iteration %d: val mIoU %.2f PixAcc %.2f", self.iteration, metrics.miou, metrics.pixacc)

    def _validate_after_saving(self) -> None:
        """Validation never loses training progress: a checkpoint of this iteration exists before it fails."""
        try:
            self._run_validation()
        except Exception:
            if self._saved_at != self.iteration:
                self.save(f"iter_{self.iteration:07d}")
            raise

    def _too_small(self, batch: dict) -> bool:
        """Whether (on any rank) skipped samples left fewer than ``min_batch`` samples to train on."""
        sizes = [v.shape[0] for v in batch.values() if isinstance(v, torch.Tensor)]
        small = min(sizes, default=0) < self.min_batch
        if self.env.enabled:
            small = broadcast_flag(small, self.device)
        return small

    def fit(self, resume: bool | Path = False, stop_at: int | None = None) -> TrainResult:
        """Train to ``cfg.iterations`` (or stop after iteration ``stop_at``).

        ``resume``: True continues from the newest usable checkpoint of the run, a path from that checkpoint.
        """
        cfg = self.cfg
        if self.env.is_main:
            ckpt.clean_stale(self.ckpt_dir)
        if resume:
            used = self.resume(None if resume is True else Path(resume))
            if used is None:
                log.info("--resume: no checkpoint in %s, starting from scratch", self.ckpt_dir)
        self._logger = RunLogger(self.run_dir, self.env.is_main, resume_from=self.iteration)
        if self.env.is_main and resume:
            self.best = self._logger.best_val() or self.best
        end = min(cfg.iterations, stop_at) if stop_at else cfg.iterations
        self.method.nets.train()
        handled = (signal.SIGINT, signal.SIGTERM) if self._can_handle_signals() else ()
        previous = {s: signal.signal(s, self._on_signal) for s in handled}
        bar = tqdm(
            total=cfg.iterations, initial=self.iteration, disable=not (cfg.progress and self.env.is_main),
            dynamic_ncols=True, mininterval=1.0 if sys.stderr.isatty() else 30.0, desc="train",
        )
        try:
            if self.iteration and self.iteration < cfg.iterations and self._val_due(self.iteration):
                self._validate_after_saving()  # a resumed run that stopped before validating this iteration
            stream = self.batches(self.iteration)
            t0, seen = time.perf_counter(), 0
            while self.iteration < end:
                try:
                    batch = next(stream)
                except DataError:
                    if self._saved_at != self.iteration:
                        self.save(f"iter_{self.iteration:07d}")
                    raise
                self._note_skipped(batch.pop("_skipped", []))
                scalars: dict[str, torch.Tensor | float] = {}
                if self._too_small(batch):
                    log.warning("iteration %d not trained: fewer than %d readable samples in its batch",
                                self.iteration + 1, self.min_batch)
                else:
                    scalars = self._step(move_to(batch, self.device, cfg.channels_last), ctx={})
                    self._last_losses = [v for k, v in scalars.items() if k.endswith("loss/total")]
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
                stop = broadcast_flag(self._stop_signal is not None, self.device)
                if stop or (cfg.ckpt_every and self.iteration % cfg.ckpt_every == 0):
                    self.save(f"iter_{self.iteration:07d}")
                if stop:
                    break
                if self.iteration < cfg.iterations and self._val_due(self.iteration):
                    self._validate_after_saving()
            completed = self.iteration >= cfg.iterations
            if not completed and self._saved_at != self.iteration:
                self.save(f"iter_{self.iteration:07d}")
            if self.skipped:
                log.warning("skipped %d unreadable samples (data.on_error=skip): %s", len(self.skipped),
                            "; ".join(self.skipped[:5]) + (" …" if len(self.skipped) > 5 else ""))
            final = None
            if completed:
                if self._resumed_from != ckpt.FINAL:
                    self.save(ckpt.FINAL)
                self._validate_after_saving()
                final = self._export()
            interrupted = None if completed else self._stop_signal
            return TrainResult(self.iteration, completed, self.best, final, interrupted)
        finally:
            bar.close()
            self._logger.close()
            for s, handler in previous.items():
                signal.signal(s, signal.SIG_DFL if handler is None else handler)

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
