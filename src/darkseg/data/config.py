"""The ``data`` config section: which dataset, where, its splits, loading and augmentation."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt

from darkseg.data.scenes import ScenesConfig
from darkseg.data.transforms import AugmentConfig
from darkseg.schema import StrictModel

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class DataConfig(StrictModel):
    """Dataset (by registry name), root folder, splits, loader and augmentation settings.

    Paths are relative to the working directory. The built-in ``scenes`` benchmark is generated into ``root`` on
    first use (``data.scenes`` holds its generator settings).
    """

    dataset: str = Field("scenes", description="registered dataset: scenes, voc, lis")
    root: str = "data/scenes"
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"
    image_dir: str = "JPEGImages"
    dark_dir: str = "dark"
    depth_dir: str | None = "depth"
    mask_dir: str = "SegmentationClassAug"
    cls_labels: str | None = Field(None, description="optional cls_labels.npy-style image-label file")
    class_map: str | None = Field(None, description="e.g. voc8_to_lis: train on VOC images of the 8 LIS classes")
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    batch_size: PositiveInt = 16
    num_workers: int = Field(2, ge=0)
    on_error: Literal["raise", "skip"] = "raise"
    augment: AugmentConfig = AugmentConfig()
    scenes: ScenesConfig = ScenesConfig()
