"""Assembles a run from a config: runtime, method, datasets, trainer, evaluator."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch
import yaml
from pydantic import ValidationError
from torch import nn
from torch.utils.data import Dataset

from darkseg.config import ExperimentConfig
from darkseg.data.loader import domain_streams, train_stream
from darkseg.data.config import DataConfig
from darkseg.data.registry import build_dataset, build_target, class_names, static_classes
from darkseg.data.transforms import EvalTransform, PairedTransform
from darkseg.engine import checkpoint as ckpt
from darkseg.engine.config import InferenceConfig
from darkseg.engine.distributed import DistEnv, barrier, init_distributed, resolve_device
from darkseg.engine.evaluator import evaluate
from darkseg.engine.trainer import Trainer, TrainResult
from darkseg.errors import CheckpointError, ConfigError
from darkseg.fileio import atomic_write_bytes
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
    torch.set_num_threads(resolve_threads(cfg.train.threads))
    provisional = DistEnv(local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    device = resolve_device(cfg.train.device, provisional)
    env = init_distributed(device)
    if cfg.train.deterministic:
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    seed_everything(cfg.seed)
    return device, env


def resolve_threads(threads: int | str) -> int:
    """``train.threads``; ``auto`` = min(4, CPUs this process may use / processes of this job on the node)."""
    if threads != "auto":
        return int(threads)
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return max(1, min(4, available_cpus() // max(local, 1)))


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def eval_views(model: nn.Module, input_view: str, inference: InferenceConfig | None = None) -> tuple[str, ...]:
    views = (input_view, "mask", "labels")
    if getattr(model, "uses_depth", False):
        views += ("depth",)
    return views + ("day", "flow") if inference is not None and inference.day_pair.enabled else views


def eval_data(data: DataConfig, inference: InferenceConfig) -> tuple[DataConfig, list[int] | None]:
    """The data config an evaluation reads and, with day-night-pair inference, the static class ids: every pair is
    kept (those whose alignment failed without correspondence), since a test split must be scored whole."""
    if not inference.day_pair.enabled:
        return data, None
    names = class_names(data)
    return data.model_copy(update={"align_failed": "keep"}), [names.index(c) for c in static_classes(data)]


# What a run folder holds: ``--overwrite`` deletes exactly these, a new run refuses to start over any of them.
RUN_FILES = ("config.yaml", "train_log.csv", "val_log.csv", "train_summary.json", "model_final.safetensors",
             "model_best.safetensors", "checkpoints", "tensorboard")
# Config keys that may differ on --resume: they do not change the weights a run produces (README guarantees).
SAFE_ON_RESUME = ("output_dir", "train.device", "train.threads", "train.progress", "train.log_every",
                  "train.find_unused_parameters",
                  "train.ckpt_every", "train.keep_last", "data.num_workers", "data.on_error",
                  "eval.inference.batch_size", "eval.split", "eval.data")


def check_run_dir(cfg: ExperimentConfig, resume: bool | Path, overwrite: bool) -> list[Path]:
    """Refuse to start a new run over an existing one; on resume, refuse a changed config.

    Returns the run files ``--overwrite`` will delete (nothing is deleted here).
    """
    run_dir = cfg.run_dir()
    present = [run_dir / f for f in RUN_FILES if (run_dir / f).exists()]
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite: choose one (continue the run, or delete it and start again)")
    if present and not resume and not overwrite:
        raise ConfigError(f"{run_dir}: already holds a run ({', '.join(p.name for p in present)}); continue it with "
                          "--resume, delete its run files and start again with --overwrite, or set another output_dir")
    if resume and (run_dir / "config.yaml").is_file():
        changed = config_changes(run_dir / "config.yaml", cfg)
        if changed:
            key, old, new = changed[0]
            more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
            raise ConfigError(
                f"{run_dir / 'config.yaml'}: --resume with a changed config: {key} was {old!r}, now {new!r}{more}; "
                f"resume with the run's config (only {', '.join(SAFE_ON_RESUME)} may change) or train into a new "
                "output_dir"
            )
    return present if overwrite else []


def flatten_config(tree: object, prefix: str = "") -> dict[str, object]:
    """A nested config dict as {"a.b.c": value} (empty sections kept as {})."""
    if isinstance(tree, dict):
        out: dict[str, object] = {}
        for k, v in tree.items():
            out.update(flatten_config(v, f"{prefix}{k}."))
        return out if out or not prefix else {prefix[:-1]: {}}
    return {prefix[:-1]: tree}


def read_run_config(saved: Path) -> ExperimentConfig:
    """The config a run folder's ``config.yaml`` records."""
    try:
        return ExperimentConfig.model_validate(yaml.safe_load(saved.read_text()))
    except (yaml.YAMLError, ValidationError) as err:
        raise ConfigError(f"{saved}: cannot read the run's config ({type(err).__name__}); "
                          "resume needs it to check that the config is unchanged") from None


def config_changes(saved: Path, cfg: ExperimentConfig) -> list[tuple[str, object, object]]:
    """(key, saved value, new value) for every key outside ``SAFE_ON_RESUME`` that differs from the run's config."""
    return config_diff(read_run_config(saved), cfg)


# Keys that do not change a run's final weights either, but stay in the pretraining cache key (adding them to
# SAFE_ON_RESUME would change every existing key): a renamed recipe file still describes the same run, and
# validation runs under its own random state (``Trainer._run_validation``), so where it happens changes the val log
# and ``model_best``, never ``model_final``.
SAME_RUN_KEYS = ("name", "train.val_every")


def config_diff(old_cfg: ExperimentConfig, cfg: ExperimentConfig) -> list[tuple[str, object, object]]:
    """(key, old value, new value) for every key outside ``SAFE_ON_RESUME`` and ``SAME_RUN_KEYS`` that differs
    between two configs."""
    old, new = flatten_config(old_cfg.model_dump(mode="json")), flatten_config(cfg.model_dump(mode="json"))
    return [(k, old.get(k), new.get(k)) for k in sorted(old.keys() | new.keys())
            if old.get(k) != new.get(k) and changes_weights(k) and k not in SAME_RUN_KEYS]


def changes_weights(key: str) -> bool:
    """Whether a flattened config key may change a run's weights (it is not one of ``SAFE_ON_RESUME``)."""
    return not any(key == s or key.startswith(s + ".") for s in SAFE_ON_RESUME)


def evaluation_only(key: str) -> bool:
    """Whether a flattened config key changes only how a finished run is evaluated, not its final weights: the
    ``eval`` section (training-time validation reads it too, so on --resume it may change the val log and
    ``model_best``, but ``model_final``, which every evaluation and export reads by default, does not depend on it)."""
    return key == "eval" or key.startswith("eval.")


def delete_run_files(files: list[Path]) -> None:
    """``--overwrite``: remove the listed run files (and only them), saying so."""
    for p in files:
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    if files:
        log.warning("--overwrite: deleted %s in %s", ", ".join(p.name for p in files), files[0].parent)


def training_data(cfg: ExperimentConfig, method: Method) -> Dataset | dict[str, Dataset]:
    """The training set, or one per domain when the method declares several (``Method.train_domains``)."""
    domains = method.train_domains()
    if domains is None:
        transform = PairedTransform(cfg.data.augment, cfg.data.mean, cfg.data.std)
        return build_dataset(cfg.data, cfg.data.train_split, method.train_views(), transform)
    sets: dict[str, Dataset] = {}
    for name, domain in domains.items():
        section = cfg.data.target if domain.section == "target" and cfg.data.target is not None else cfg.data
        transform = PairedTransform(section.augment, section.mean, section.std)
        sets[name] = (build_target(cfg.data, domain.views, transform) if domain.section == "target"
                      else build_dataset(cfg.data, cfg.data.train_split, domain.views, transform))
    return sets


def train(cfg: ExperimentConfig, resume: bool | Path = False, stop_at: int | None = None,
          overwrite: bool = False) -> TrainResult:
    """Train a config end to end: writes config.yaml, logs, checkpoints, model_final.safetensors, metrics.

    ``resume``: True continues from the run's newest usable checkpoint, a path from that checkpoint.
    ``overwrite``: delete an existing run's files first (without it, an existing run is never touched).
    """
    if cfg.data.val_split == cfg.data.test_split:
        raise ConfigError("data.val_split: model selection must not use the test split; choose another split")
    doomed = check_run_dir(cfg, resume, overwrite)  # every rank, before anything is written
    device, env = setup_runtime(cfg)
    run_dir = cfg.run_dir()
    method = build_method(cfg)
    minimum = getattr(method.deploy_model(), "min_input_size", 1)
    if cfg.data.augment.crop_size < minimum:
        raise ConfigError(f"data.augment.crop_size: {cfg.data.augment.crop_size} is smaller than the {minimum} pixels "
                          "this model needs (its output stride); use a larger crop")
    train_set = training_data(cfg, method)
    deploy = method.deploy_model()
    val_data, val_static = eval_data(cfg.data, cfg.eval.inference)
    val_set = build_dataset(val_data, cfg.data.val_split, eval_views(deploy, method.input_view(), cfg.eval.inference),
                            EvalTransform())

    def batches(start: int):
        stream = domain_streams if isinstance(train_set, dict) else train_stream
        return stream(train_set, cfg.data.batch_size, cfg.seed, start, cfg.data.num_workers,  # type: ignore[arg-type]
                      cfg.data.on_error, env.rank, env.world_size)

    def validate(model: nn.Module) -> SegMetrics:
        return evaluate(model, val_set, method.input_view(), cfg.eval.inference, device, env,
                        num_workers=cfg.data.num_workers, on_error=cfg.data.on_error, progress=False,
                        static_ids=val_static)

    trainer = Trainer(method, cfg.train, run_dir, device, env, batches, cfg.data.batch_size, validate)
    if env.is_main:  # the last check has passed: from here on the run folder is written
        delete_run_files(doomed)
        run_dir.mkdir(parents=True, exist_ok=True)
        if not (run_dir / "config.yaml").is_file():  # a resumed run keeps the config that produced its weights
            atomic_write_bytes(run_dir / "config.yaml", cfg.to_yaml().encode())
    barrier()
    result = trainer.fit(resume=resume, stop_at=stop_at)
    if result.completed and env.is_main:
        summary = {"iterations": result.iteration, "best_val": result.best}
        atomic_write_bytes(run_dir / "train_summary.json", json.dumps(summary, indent=2).encode())
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
    return evaluate_split(cfg, weights, split, progress)[0]


def warn_if_off_training_scale(cfg: ExperimentConfig, dataset: Dataset) -> None:
    """Warn when no evaluation scale brings the images to the long sides training rescaled them to."""
    aug = cfg.data.augment
    if aug.scale_mode != "long_side" or len(dataset) == 0:  # type: ignore[arg-type]
        return
    h, w = dataset[0]["mask"].shape[-2:]
    low, high = aug.long_side
    seen = [round(s * max(h, w)) for s in cfg.eval.inference.scales]
    if not any(low <= x <= high for x in seen):
        log.warning("eval: the model was trained on images rescaled to a long side of %d-%d px "
                    "(data.augment.long_side) but is evaluated at %s px; set eval.inference.scales=[%.2f] to match",
                    low, high, "/".join(map(str, seen)), (low + high) / 2 / max(h, w))


def evaluate_split(
    cfg: ExperimentConfig, weights: Path | None, split: str, progress: bool = True
) -> tuple[SegMetrics, str]:
    """The metrics of the deployed model on a split and where its ground-truth masks came from."""
    device, env = setup_runtime(cfg)
    model = load_deployed(cfg, weights, device)
    data = cfg.eval.data or cfg.data
    if tuple(class_names(data)) != tuple(class_names(cfg.data)):
        raise ConfigError(f"eval.data: classes {class_names(data)} differ from the training classes; "
                          "use a class_map that makes them agree")
    data, static_ids = eval_data(data, cfg.eval.inference)
    dataset = build_dataset(data, split, eval_views(model, input_view_of(cfg), cfg.eval.inference), EvalTransform())
    warn_if_off_training_scale(cfg, dataset)
    masks = getattr(dataset, "mask_source", f"{data.dataset} annotations under {data.root}")
    inference, chosen = cfg.eval.inference, None
    search = cfg.eval.inference_search
    if search is not None:
        from darkseg.engine.inference_search import describe, search_inference, setting_words

        if search.split == data.test_split:
            raise ConfigError(f"eval.inference_search.split: {search.split} is the test split; thresholds are "
                              "chosen on a validation split (e.g. val)")
        search_set = build_dataset(data, search.split, eval_views(model, input_view_of(cfg), inference),
                                   EvalTransform())
        inference, scored = search_inference(model, search_set, input_view_of(cfg), inference, search, device, env,
                                             cfg.data.num_workers, cfg.data.on_error)
        chosen = describe(inference, search.split, max(m for _, m in scored))
        log.info("eval: class filter %s chosen on the %s split (mIoU %.2f there)", setting_words(chosen),
                 search.split, chosen["selection_miou"])
    metrics = evaluate(model, dataset, input_view_of(cfg), inference, device, env,
                       num_workers=cfg.data.num_workers, on_error=cfg.data.on_error, progress=progress,
                       static_ids=static_ids)
    return (metrics if chosen is None else dataclasses.replace(metrics, inference=chosen)), masks
