"""Backbone pretraining by multi-label classification, the stand-in for ImageNet weights on the built-in benchmark.

Every real WSSS pipeline starts from ImageNet weights; the ``scenes`` recipes cannot (nothing is downloaded, and an
ImageNet WideResNet-38 does not fit a 96-pixel CPU benchmark), so they load a backbone pretrained here instead:
``darkseg pretrain configs/pretrain/scenes_pretrain_wideresnet38.yaml`` trains the plain CAM network (backbone + GAP +
1×1 classifier, multi-label loss) on normal-light scenes drawn with their own generator seed, i.e. images disjoint from
the benchmark's train/val/test splits, and writes the backbone alone to ``<output_dir>/backbone.safetensors``. The
scenes recipes read that file through ``model.backbone.pretrained``, the path and LR multipliers the VOC recipes use
for ImageNet weights.

The run folder is the cache. Its key is everything the weights depend on: the resolved config (keys that do not
change the weights, such as ``train.threads``, excepted) and the generated images' ``scenes.json`` (generator version,
settings). A complete, matching cache is reused; an interrupted one is resumed; one made with another key is refused
with one line unless ``force`` is given, which moves it aside (never deletes it) and trains again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from darkseg.config import ExperimentConfig
from darkseg.engine.checkpoint import prefixed, save_weights
from darkseg.engine.distributed import is_main_process
from darkseg.engine.runner import changes_weights, config_changes, flatten_config, train
from darkseg.errors import ConfigError
from darkseg.fileio import atomic_write_bytes, cache_lock
from darkseg.models.weights import read_weights

log = logging.getLogger(__name__)

BACKBONE_FILE = "backbone.safetensors"
KEY_FILE = "backbone.json"


@dataclass
class Pretrained:
    """The exported backbone: its file, the cache key and whether this call trained it."""

    path: Path
    key: str
    trained: bool
    seconds: float


def data_identity(cfg: ExperimentConfig) -> dict:
    """What the pretraining images depend on: for ``scenes``, the ``scenes.json`` of the images (generated first
    if missing or made with other settings); for another dataset, its name and root."""
    if cfg.data.dataset != "scenes":
        return {"dataset": cfg.data.dataset, "root": cfg.data.root}
    from darkseg.data.scenes import ensure_scenes, read_meta

    ensure_scenes(Path(cfg.data.root), cfg.data.scenes)
    meta = read_meta(Path(cfg.data.root)) or {}
    return {key: meta.get(key) for key in ("version", "config", "darkener")}


def cache_key(saved_config: Path, data: dict) -> str:
    """sha256 of the run's saved config (minus keys that do not change the weights) and of its data identity."""
    flat = flatten_config(yaml.safe_load(saved_config.read_text()))
    kept = {k: v for k, v in flat.items() if changes_weights(k)}
    blob = json.dumps({"config": kept, "data": data}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _move_aside(run_dir: Path) -> Path:
    """``force``: keep the old cache under a new name (a user's files are never deleted)."""
    target = run_dir.with_name(f"{run_dir.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir.rename(target)
    log.warning("moved the pretraining run made with another config to %s", target)
    return target


def ensure_backbone(cfg: ExperimentConfig, force: bool = False) -> Pretrained:
    """Train (or reuse, or resume) the pretraining run of ``cfg`` and export its backbone; see the module doc. One
    command at a time per run folder (``cache_lock``, held by rank 0 under torchrun, whose ranks train together):
    another one started meanwhile waits, then reuses it."""
    if cfg.method.name != "cam":
        raise ConfigError(f"method.name: backbone pretraining trains the plain CAM classifier ('cam'), not "
                          f"{cfg.method.name!r}; start from configs/pretrain/scenes_pretrain_wideresnet38.yaml")
    with cache_lock(cfg.run_dir()) if is_main_process() else contextlib.nullcontext():
        return _ensure_backbone(cfg, force)


def _ensure_backbone(cfg: ExperimentConfig, force: bool) -> Pretrained:
    t0 = time.perf_counter()
    run_dir = cfg.run_dir()
    saved = run_dir / "config.yaml"
    out, key_file = run_dir / BACKBONE_FILE, run_dir / KEY_FILE
    if saved.is_file():
        changed = config_changes(saved, cfg)
        stored = json.loads(key_file.read_text()) if key_file.is_file() else None
        if not changed and stored is not None and out.is_file():
            # the images may have been regenerated since (another generator version): then the key differs
            data = data_identity(cfg)
            key = cache_key(saved, data)
            if stored.get("key") == key:
                return Pretrained(out, stored["key"], False, time.perf_counter() - t0)
            changed = [("data (scenes.json)", stored.get("data"), data) if stored.get("data") != data else
                       ("the cache key (a darkseg version that keys caches differently)", stored.get("key"), key)]
        if changed:
            what, old, new = changed[0]
            if not force:
                raise ConfigError(f"{saved}: this pretraining run was made with {what}={old!r}, the config now gives "
                                  f"{new!r}; pass --force to move it aside and pretrain again, or set another "
                                  "output_dir (and point model.backbone.pretrained of the recipes at it)")
            _move_aside(run_dir)
    result = train(cfg, resume=True)
    if not result.completed:
        raise KeyboardInterrupt
    weights = read_weights(run_dir / "model_final.safetensors")
    backbone = prefixed(weights, "backbone")
    if not backbone:
        raise ConfigError(f"{run_dir / 'model_final.safetensors'}: no 'backbone.' weights in the trained model")
    data = data_identity(cfg)
    key = cache_key(saved, data)
    save_weights(out, backbone, metadata={"darkseg_pretrain_key": key})
    record = {"key": key, "data": data, "source": str(run_dir / "model_final.safetensors"), "tensors": len(backbone),
              "best": result.best}
    atomic_write_bytes(key_file, json.dumps(record, indent=2, default=str).encode())
    return Pretrained(out, key, True, time.perf_counter() - t0)
