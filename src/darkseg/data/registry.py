"""Dataset registry: a name maps to its class names and a builder; new datasets register here, not in the trainer."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch.distributed as dist

from darkseg.data import night_sets, scenes_daynight
from darkseg.data.base import SegmentationDataset, Transform
from darkseg.data.cityscapes import CITYSCAPES_CLASSES, NUM_STATIC, cityscapes
from darkseg.data.coco import COCO_CLASSES, check_converted
from darkseg.data.config import DataConfig
from darkseg.data.dark_zurich import dark_zurich
from darkseg.data.folder import FolderDataset, read_spec
from darkseg.data.io import VOC_CLASSES
from darkseg.data.layout import check_tree
from darkseg.data.lis import LIS_CLASSES
from darkseg.data.scenes import SCENES_CLASSES, ensure_scenes
from darkseg.data.voc import CLASS_MAPS, VOCDataset
from darkseg.errors import ConfigError, DataError
from darkseg.registry import Registry

Builder = Callable[[DataConfig, str, Sequence[str], Transform | None], SegmentationDataset]


@dataclass(frozen=True)
class DatasetSpec:
    """How to get a dataset's class names (without touching the disk) and how to build a split."""

    classes: Callable[[DataConfig], tuple[str, ...]]
    build: Builder
    static: Callable[[DataConfig], tuple[str, ...]] = lambda cfg: ()
    """Classes that stay in place between a day image and its night pair (static-class losses of adaptation)."""
    generate: Callable[[DataConfig], Path] | None = None
    """Makes (or reuses) the files of a generated dataset, the built-in benchmarks; None for datasets read from disk."""


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def class_names(cfg: DataConfig) -> tuple[str, ...]:
    return DATASETS.get(cfg.dataset, "data.dataset").classes(cfg)


def static_classes(cfg: DataConfig) -> tuple[str, ...]:
    return DATASETS.get(cfg.dataset, "data.dataset").static(cfg)


def build_dataset(
    cfg: DataConfig, split: str, views: Sequence[str], transform: Transform | None = None
) -> SegmentationDataset:
    """The ``split`` of the configured dataset, loading only ``views``."""
    return DATASETS.get(cfg.dataset, "data.dataset").build(cfg, split, views, transform)


def ensure_generated(cfg: DataConfig) -> None:
    """Make the files of a generated dataset (a built-in benchmark) and of its target domain if they are not there
    yet, e.g. once before parallel processes read them; datasets read from disk need nothing."""
    for data in (cfg, cfg.target):
        spec = None if data is None else DATASETS.get(data.dataset, "data.dataset")
        if spec is not None and spec.generate is not None:
            spec.generate(data)


def build_target(
    cfg: DataConfig, views: Sequence[str], transform: Transform | None = None
) -> SegmentationDataset:
    """The training split of the unlabelled target domain ``data.target`` of an adaptation method."""
    if cfg.target is None:
        raise ConfigError("data.target: this method adapts to a target domain; set data.target "
                          "(e.g. {dataset: dark_zurich, root: data/dark_zurich, train_split: train})")
    return build_dataset(cfg.target, cfg.target.train_split, views, transform)


def _voc_classes(cfg: DataConfig) -> tuple[str, ...]:
    if cfg.class_map is None:
        return VOC_CLASSES
    if cfg.class_map not in CLASS_MAPS:
        raise ConfigError(f"data.class_map: unknown {cfg.class_map!r}; allowed: {', '.join(CLASS_MAPS)}")
    return CLASS_MAPS[cfg.class_map][2]


def _mask_dir(cfg: DataConfig, split: str) -> str:
    """``train_mask_dir`` (e.g. pseudo masks) for the training split when set, else ``mask_dir``."""
    return cfg.train_mask_dir if cfg.train_mask_dir and split == cfg.train_split else cfg.mask_dir


def _check_train_masks(dataset: VOCDataset, cfg: DataConfig, split: str, views: Sequence[str]) -> VOCDataset:
    """A ``train_mask_dir`` (pseudo masks) must hold a mask for every image of the split it trains on: checked when
    the dataset is built, so a run never stops on a missing mask hours in."""
    if not (cfg.train_mask_dir and split == cfg.train_split and "mask" in views):
        return dataset
    folder = dataset.folder("mask")
    missing = [sid for sid in dataset.ids if not (folder / f"{sid}.png").is_file()]
    if missing:
        raise DataError(f"{folder}: no mask for {len(missing)} of {len(dataset.ids)} {split} images, e.g. "
                        f"{folder / missing[0]}.png; rerun 'darkseg pseudo' into it (it resumes) or set data.train_mask_dir "
                        "to a complete folder")
    return dataset


def _voc(cfg: DataConfig, split: str, views: Sequence[str], transform: Transform | None) -> SegmentationDataset:
    check_tree(Path(cfg.root), "voc")
    return _check_train_masks(VOCDataset(
        cfg.root, split, views, transform, image_dir=cfg.image_dir, dark_dir=cfg.dark_dir,
        depth_dir=cfg.depth_dir or "depth", mask_dir=_mask_dir(cfg, split),
        cls_labels=Path(cfg.cls_labels) if cfg.cls_labels else None, class_map=cfg.class_map,
    ), cfg, split, views)


def _make_scenes(cfg: DataConfig) -> Path:
    check_tree(Path(cfg.root), "scenes")  # the tree check too runs once, before the generator writes anything
    return ensure_scenes(Path(cfg.root), cfg.scenes)


def _scenes(cfg: DataConfig, split: str, views: Sequence[str], transform: Transform | None) -> SegmentationDataset:
    """The built-in benchmark, generated on first use (by rank 0 only when running under torchrun)."""
    root = _generate_once(lambda: _make_scenes(cfg))
    return _check_train_masks(VOCDataset(root, split, views, transform, class_names=SCENES_CLASSES,
                                         mask_dir=_mask_dir(cfg, split)), cfg, split, views)


def _generate_once(generate: Callable[[], Path]) -> Path:
    """Run a cache generator on rank 0 only when running under torchrun (the other ranks wait, then reuse it)."""
    distributed = dist.is_available() and dist.is_initialized()
    if distributed and dist.get_rank() != 0:
        dist.barrier()
    root = generate()
    if distributed and dist.get_rank() == 0:
        dist.barrier()
    return root


def _align_dir(cfg: DataConfig, split: str) -> Path:
    return Path(cfg.align_dir) if cfg.align_dir else Path(cfg.root) / "align" / split


def _night(reader: Callable[..., SegmentationDataset], paired: bool) -> Builder:
    """A builder for a Cityscapes-class reader taking (root, split, views, transform[, align_dir, align_flow])."""

    def build(cfg: DataConfig, split: str, views: Sequence[str], transform: Transform | None) -> SegmentationDataset:
        if paired:
            return reader(cfg.root, split, views, transform, _align_dir(cfg, split), cfg.align_flow,
                          keep_unaligned=cfg.align_failed == "keep")
        return reader(cfg.root, split, views, transform)

    return build


def _folder(cfg: DataConfig, split: str, views: Sequence[str], transform: Transform | None) -> SegmentationDataset:
    return FolderDataset(cfg.root, split, views, transform, _align_dir(cfg, split), cfg.align_flow,
                         keep_unaligned=cfg.align_failed == "keep")


def _make_scenes_daynight(cfg: DataConfig) -> Path:
    return scenes_daynight.ensure(Path(cfg.root), cfg.scenes_daynight)


def _scenes_daynight(cfg: DataConfig, split: str, views: Sequence[str],
                     transform: Transform | None) -> SegmentationDataset:
    """The built-in day→night benchmark (a folder dataset), generated on first use."""
    root = _generate_once(lambda: _make_scenes_daynight(cfg))
    return FolderDataset(root, split, views, transform, _align_dir(cfg, split), cfg.align_flow, "scenes_daynight",
                         keep_unaligned=cfg.align_failed == "keep")


def _lis(cfg: DataConfig, split: str, views: Sequence[str], transform: Transform | None) -> SegmentationDataset:
    from darkseg.data.lis import LISDataset

    return LISDataset(cfg.root, split, views, transform, depth_dir=cfg.depth_dir)


def _converted(classes: tuple[str, ...], command: str) -> Builder:
    """A builder for a VOC-layout tree written by a ``darkseg data`` converter (coco, cocostuff10k)."""

    def build(cfg: DataConfig, split: str, views: Sequence[str], transform: Transform | None) -> SegmentationDataset:
        check_converted(Path(cfg.root), cfg.dataset, command)
        return _check_train_masks(VOCDataset(
            cfg.root, split, views, transform, image_dir=cfg.image_dir, dark_dir=cfg.dark_dir,
            depth_dir=cfg.depth_dir or "depth", mask_dir=_mask_dir(cfg, split), class_names=classes,
            cls_labels=Path(cfg.cls_labels) if cfg.cls_labels else None,
        ), cfg, split, views)

    return build


DATASETS.register("voc")(DatasetSpec(_voc_classes, _voc))
DATASETS.register("scenes")(DatasetSpec(lambda cfg: SCENES_CLASSES, _scenes, generate=_make_scenes))
DATASETS.register("lis")(DatasetSpec(lambda cfg: LIS_CLASSES, _lis))
DATASETS.register("coco")(DatasetSpec(lambda cfg: COCO_CLASSES, _converted(COCO_CLASSES, "darkseg data coco")))
DATASETS.register("cocostuff10k_voc")(DatasetSpec(lambda cfg: VOC_CLASSES,
                                                  _converted(VOC_CLASSES, "darkseg data cocostuff10k")))
_CITY, _STATIC = (lambda cfg: CITYSCAPES_CLASSES), (lambda cfg: CITYSCAPES_CLASSES[:NUM_STATIC])
DATASETS.register("cityscapes")(DatasetSpec(_CITY, _night(cityscapes, False), _STATIC))
DATASETS.register("dark_zurich")(DatasetSpec(_CITY, _night(dark_zurich, True), _STATIC))
DATASETS.register("acdc_night")(DatasetSpec(_CITY, _night(night_sets.acdc_night, True), _STATIC))
DATASETS.register("nighttime_driving")(DatasetSpec(_CITY, _night(night_sets.nighttime_driving, False), _STATIC))
DATASETS.register("bdd100k_night")(DatasetSpec(_CITY, _night(night_sets.bdd100k_night, False), _STATIC))
DATASETS.register("nightcity")(DatasetSpec(_CITY, _night(night_sets.nightcity, False), _STATIC))
DATASETS.register("scenes_daynight")(DatasetSpec(lambda cfg: scenes_daynight.CLASSES, _scenes_daynight,
                                                 lambda cfg: scenes_daynight.STATIC_CLASSES, _make_scenes_daynight))
DATASETS.register("folder")(DatasetSpec(lambda cfg: tuple(read_spec(Path(cfg.root)).classes), _folder,
                                        lambda cfg: tuple(read_spec(Path(cfg.root)).static_classes)))
