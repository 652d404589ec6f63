"""COCO instance JSON (LIS, MS COCO 2014): reading the file and rasterising instances into a semantic mask.

Overlap rule: crowd regions (``iscrowd=1``) are painted 255 first; then the instances are painted from the largest
to the smallest area (ties in annotation order), so a smaller instance wins where instances overlap.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from darkseg.errors import DataError

RULE_VERSION = "crowd255-largest-first-v1"  # part of cache keys: change it when the rasterisation changes

Instance = tuple[int, Any, bool]  # (darkseg class id, COCO segmentation, iscrowd)


def load_json(path: Path, missing: str) -> dict:
    """The parsed annotation file; ``missing`` says what to do when it does not exist."""
    try:
        coco = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: {missing}") from None
    except ValueError as err:
        raise DataError(f"{path}: not a JSON file ({err}); replace it") from None
    if not isinstance(coco, dict):
        raise DataError(f"{path}: not a COCO-style annotation file (top level is not an object); replace it")
    return coco


def rasterise(height: int, width: int, instances: list[Instance], source: str) -> np.ndarray:
    """Semantic uint8 mask from COCO instances (polygons or RLE); crowd -> 255, smaller instances on top."""
    rles = []
    for class_id, segm, crowd in instances:
        try:
            if isinstance(segm, list):
                polygons = [p for p in segm if len(p) >= 6]
                if not polygons:
                    continue
                rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
            elif isinstance(segm.get("counts"), list):
                rle = mask_utils.frPyObjects(segm, height, width)
            else:
                rle = dict(segm, counts=segm["counts"].encode() if isinstance(segm["counts"], str) else segm["counts"])
            area = int(mask_utils.area(rle))
        except Exception as err:  # noqa: BLE001 - malformed polygon or RLE (pycocotools raises several types)
            raise DataError(f"{source}: invalid segmentation ({err}); fix the annotation") from None
        rles.append((crowd, -area, len(rles), class_id, rle))
    mask = np.zeros((height, width), np.uint8)
    for crowd, _, _, class_id, rle in sorted(rles, key=lambda r: (not r[0], r[1], r[2])):
        binary = mask_utils.decode(rle).astype(bool)
        if binary.shape != mask.shape:
            raise DataError(f"{source}: segmentation size {binary.shape} differs from the image; fix the annotation")
        mask[binary] = 255 if crowd else class_id
    return mask
