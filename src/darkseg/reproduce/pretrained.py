"""The pretrained start of the scenes suites: the backbone of ``darkseg pretrain`` is made (or reused) before any
column whose recipe loads it, so its cost counts in the suite's time."""

from __future__ import annotations

import time
from pathlib import Path

from darkseg.config import load_config
from darkseg.engine.runner import changes_weights
from darkseg.reproduce.runner import Plan

SCENES_PRETRAIN = "pretrain/scenes_pretrain_wideresnet38.yaml"


def ensure_pretrained_start(plan: Plan, keys: tuple[str, ...], config: str = SCENES_PRETRAIN) -> None:
    """``darkseg pretrain <configs>/config`` when a column of ``keys`` loads its backbone file. Of the suite's
    overrides only those that do not change the weights (``train.threads``, ...) reach the pretraining run."""
    safe = [o for o in plan.overrides
            if not changes_weights(key := o.split("=", 1)[0]) and key != "output_dir"]
    pretrain = load_config(plan.configs / config, safe)
    target = (pretrain.run_dir() / "backbone.safetensors").resolve()
    columns = plan.suite.columns()
    users = [k for k in keys if (p := plan.config(columns[k], plan.seeds[0]).model.backbone.pretrained) is not None
             and Path(p).resolve() == target]
    if not users:
        return
    from darkseg.engine.pretrain import ensure_backbone

    t0 = time.perf_counter()
    print(f"pretrained start ({config}) for {', '.join(users)} ...", flush=True)
    done = ensure_backbone(pretrain)
    state = f"pretrained in {(time.perf_counter() - t0) / 60:.1f} min" if done.trained else "reused"
    print(f"pretrained start: {done.path} {state} (cache key {done.key})", flush=True)
