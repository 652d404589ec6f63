"""Assembles a run from a config: runtime, method, datasets, trainer, evaluator."""

from __future__ import annotations

import json
import logging
import os
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

from darkseg.config import ExperimentConfig
from darkseg.data.loader import train_stream
from darkseg.data.registry import build_dataset, class_names
from darkseg.data.transforms import EvalTransform, PairedTransform
from darkseg.engine import checkpoint as ckpt
from darkseg.engine.distributed import DistEnv, init_distributed, resolve_device
from darkseg.engine.evaluator import evaluate
from darkseg.engine.trainer import Trainer, TrainResult
from darkseg.errors import CheckpointError, ConfigError
from darkseg.methods.base import DatasetInfo, Method
from darkseg.methods.catalog import METHODS
from darkseg.metrics import SegMetrics
from darkseg.models.factory import build_segmenter
from darkseg.models.weights import load_into, read_weights

log = logging.getLogger(__name__)


def dataset_info(cfg: ExperimentConfig) -> DatasetInfo:
    return DatasetInfo(class_names(cfg.data), cfg.data.mean, cfg.data.std)


def build_method(cfg: ExperimentConfig, load_external: bool = True) -> Method:
    """The configured method with its networks (``load_external=False`` skips teacher/pretrained files)."""
    return METHODS.get(cfg.method.name, "method.name")(cfg, dataset_info(cfg), load_external=load_external)


def setup_runtime(cfg: ExperimentConfig) -> tuple[torch.device, DistEnv]:
    """Threads, determinism, seeds and the process group; returns (device, distributed environment)."""
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    provisional = DistEnv(local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    device = resolve_device(cfg.train.device, provisional)
    env = init_distributed(device)
    if cfg.train.deterministic:
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    seed_everything(cfg.seed)
    return device, env


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def eval_views(model: nn.Module, input_view: str) -> tuple[str, ...]:
    views = (input_view, "mask", "labels")
    return views + ("depth",) if getattr(model, "uses_depth", False) else views


def train(cfg: ExperimentConfig, resume: bool = False, stop_at: int | None = None) -> TrainResult:
    """Train a config end to end: writes config.yaml, logs, checkpoints, model_final.safetensors, metrics."""
    if cfg.data.val_split == cfg.data.test_split:
        raise ConfigError("data.val_split: model selection must not use the test split; choose another split")
    device, env = setup_runtime(cfg)
    run_dir = cfg.run_dir()
    method = build_method(cfg)
    minimum = getattr(method.deploy_model(), "min_input_size", 1)
    if cfg.data.augment.crop_size < minimum:
        raise ConfigError(f"data.augment.crop_size: {cfg.data.augment.crop_size} is smaller than the {minimum} pixels "
                          "this model needs (its output stride); use a larger crop")
    transform = PairedTransform(cfg.data.augment, cfg.data.mean, cfg.data.std)
    train_set = build_dataset(cfg.data, cfg.data.train_split, method.train_views(), transform)
    deploy = method.deploy_model()
    val_set = build_dataset(cfg.data, cfg.data.val_split, eval_views(deploy, method.input_view()), EvalTransform())
    if env.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(cfg.to_yaml())

    def batches(start: int):
        return train_stream(train_set, cfg.data.batch_size, cfg.seed, start, cfg.data.num_workers,
                            cfg.data.on_error, env.rank, env.world_size)

    def validate(model: nn.Module) -> SegMetrics:
        return evaluate(model, val_set, method.input_view(), cfg.eval.inference, device, env,
                        num_workers=cfg.data.num_workers, on_error=cfg.data.on_error, progress=False)

    trainer = Trainer(method, cfg.train, run_dir, device, env, batches, cfg.data.batch_size, validate)
    result = trainer.fit(resume=resume, stop_at=stop_at)
    if result.completed and env.is_main:
        (run_dir / "train_summary.json").write_text(
            json.dumps({"iterations": result.iteration, "best_val": result.best}, indent=2)
        )
    return result


def load_deployed(cfg: ExperimentConfig, weights: Path | None, device: torch.device) -> nn.Module:
    """The deployed network of a config with trained weights (default: the run's model_final.safetensors).

    ``weights`` may be an exported ``.safetensors``/``.pth`` file, or a training checkpoint directory.
    """
    info = dataset_info(cfg)
    model = build_segmenter(cfg.model, info.num_classes, info.mean, info.std, load_pretrained=False)
    path = Path(weights) if weights else cfg.run_dir() / "model_final.safetensors"
    if path.is_dir():
        tensors, _, meta = ckpt.load_checkpoint(path)
        tensors = ckpt.prefixed(tensors, meta["deploy_net"])
    elif path.is_file():
        tensors = read_weights(path)
    else:
        raise CheckpointError(f"{path}: no trained weights; train first or pass --weights")
    load_into(model, tensors, str(path))
    return model.to(device).eval()


def input_view_of(cfg: ExperimentConfig) -> str:
    return cfg.method.input


def evaluate_config(
    cfg: ExperimentConfig, weights: Path | None, split: str, progress: bool = True
) -> SegMetrics:
    """Evaluate the deployed model of a config on a split."""
    device, env = setup_runtime(cfg)
    model = load_deployed(cfg, weights, device)
    data = cfg.eval.data or cfg.data
    if tuple(class_names(data)) != tuple(class_names(cfg.data)):
        raise ConfigError(f"eval.data: classes {class_names(data)} differ from the training classes; "
                          "use a class_map that makes them agree")
    dataset = build_dataset(data, split, eval_views(model, input_view_of(cfg)), EvalTransform())
    return evaluate(model, dataset, input_view_of(cfg), cfg.eval.inference, device, env,
                    num_workers=cfg.data.num_workers, on_error=cfg.data.on_error, progress=progress)
