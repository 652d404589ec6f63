"""Dataset registry: a name maps to its class names and a builder; new datasets register here, not in the trainer."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch.distributed as dist

from darkseg.data.base import SegmentationDataset, Transform
from darkseg.data.config import DataConfig
from darkseg.data.io import VOC_CLASSES
from darkseg.data.lis import LIS_CLASSES
from darkseg.data.scenes import SCENES_CLASSES, ensure_scenes
from darkseg.data.voc import CLASS_MAPS, VOCDataset
from darkseg.errors import ConfigError
from darkseg.registry import Registry

Builder = Callable[[DataConfig, str, Sequence[str], Transform | None], SegmentationDataset]


@dataclass(frozen=True)
class DatasetSpec:
    """How to get a dataset's class names (without touching the disk) and how to build a split."""

    classes: Callable[[DataConfig], tuple[str, ...]]
    build: Builder


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def class_names(cfg: DataConfig) -> tuple[str, ...]:
    return DATASETS.get(cfg.dataset, "data.dataset").classes(cfg)


def build_dataset(
    cfg: DataConfig, split: str, views: Sequence[str], transform: Transform | None = None
) -> SegmentationDataset:
    """The ``split`` of the configured dataset, loading only ``views``."""
    return DATASETS.get(cfg.dataset, "data.dataset").build(cfg, split, views, transform)


def _voc_classes(cfg: DataConfig) -> tuple[str, ...]:
    if cfg.class_map is None:
        return VOC_CLASSES
    if cfg.class_map not in CLASS_MAPS:
        raise ConfigError(f"data.class_map: unknown {cfg.class_map!r}; allowed: {', '.join(CLASS_MAPS)}")
    return CLASS_MAPS[cfg.class_map][2]


def _voc(cfg: DataConfig, split: str, views: Sequence[str], transform: Transform | None) -> SegmentationDataset:
    return VOCDataset(
        cfg.root, split, views, transform, image_dir=cfg.image_dir, dark_dir=cfg.dark_dir,
        depth_dir=cfg.depth_dir or "depth", mask_dir=cfg.mask_dir,
        cls_labels=Path(cfg.cls_labels) if cfg.cls_labels else None, class_map=cfg.class_map,
    )


def _scenes(cfg: DataConfig, split: str, views: Sequence[str], transform: Transform | None) -> SegmentationDataset:
    """The built-in benchmark, generated on first use (by rank 0 only when running under torchrun)."""
    distributed = dist.is_available() and dist.is_initialized()
    if distributed and dist.get_rank() != 0:
        dist.barrier()
    root = ensure_scenes(Path(cfg.root), cfg.scenes)
    if distributed and dist.get_rank() == 0:
        dist.barrier()
    return VOCDataset(root, split, views, transform, class_names=SCENES_CLASSES)


def _lis(cfg: DataConfig, split: str, views: Sequence[str], transform: Transform | None) -> SegmentationDataset:
    from darkseg.data.lis import LISDataset

    return LISDataset(cfg.root, split, views, transform, depth_dir=cfg.depth_dir)


DATASETS.register("voc")(DatasetSpec(_voc_classes, _voc))
DATASETS.register("scenes")(DatasetSpec(lambda cfg: SCENES_CLASSES, _scenes))
DATASETS.register("lis")(DatasetSpec(lambda cfg: LIS_CLASSES, _lis))
