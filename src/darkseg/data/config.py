"""The ``data`` config section: which dataset, where, its splits, loading and augmentation."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt

from darkseg.data.scenes import ScenesConfig
from darkseg.data.scenes_daynight import DayNightConfig
from darkseg.data.transforms import AugmentConfig
from darkseg.schema import StrictModel

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class DataConfig(StrictModel):
    """Dataset (by registry name), root folder, splits, loader and augmentation settings.

    Paths are relative to the working directory. The built-in ``scenes`` benchmark is generated into ``root`` on
    first use (``data.scenes`` holds its generator settings).
    """

    dataset: str = Field("scenes", description="registered dataset: scenes, voc, lis, coco, cocostuff10k_voc, "
                         "cityscapes, dark_zurich, acdc_night, nighttime_driving, bdd100k_night, nightcity, "
                         "scenes_daynight, folder")
    root: str = "data/scenes"
    train_split: str = "train"
    val_split: str = "val"
    test_split: str = "test"
    image_dir: str = "JPEGImages"
    dark_dir: str = "dark"
    depth_dir: str | None = "depth"
    mask_dir: str = "SegmentationClassAug"
    train_mask_dir: str | None = Field(
        None, description="masks of the train split only, e.g. a `darkseg pseudo` folder (voc, scenes, coco, "
        "cocostuff10k_voc); None = mask_dir"
    )
    cls_labels: str | None = Field(None, description="optional cls_labels.npy-style image-label file")
    class_map: str | None = Field(None, description="e.g. voc8_to_lis: train on VOC images of the 8 LIS classes")
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    batch_size: PositiveInt = 16
    num_workers: int = Field(2, ge=0)
    on_error: Literal["raise", "skip"] = "raise"
    augment: AugmentConfig = AugmentConfig()
    scenes: ScenesConfig = ScenesConfig()
    scenes_daynight: DayNightConfig = DayNightConfig()
    align_dir: str | None = Field(None, description="'darkseg align' output of the split read with the flow view; "
                                  "None = <root>/align/<split>")
    align_flow: Literal["fine", "coarse", "fine_back"] = Field(
        "fine", description="flow view: fine (homography + DIS), coarse (homography only), fine_back (day→night)")
    align_failed: Literal["exclude", "keep"] = Field(
        "exclude", description="pairs whose alignment failed: exclude them (training), or keep them with an all-NaN "
        "flow, i.e. no correspondence (evaluation with day-night pairs, which must score every image)")
    roots: dict[str, str] = Field(default_factory=dict, description="dataset name -> root for `darkseg eval "
                                  "--datasets` (default data/<name>)")
    target: DataConfig | None = Field(None, description="unlabelled target domain of adaptation methods (e.g. "
                                      "dark_zurich night_train with views image, day, flow); its train_split is read")
