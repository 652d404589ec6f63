"""``folder``: your own data — images in split folders, optional masks, image tags and paired day images.

Layout (only ``images/`` and ``dataset.yaml`` are required)::

    ROOT/dataset.yaml                 classes (names, in id order), optional palette, ignore_index, static_classes
    ROOT/images/<split>/<id>.<ext>    .png .jpg .jpeg .bmp .tif; sub-folders allowed (the id keeps them)
    ROOT/masks/<split>/<id>.png       class-id PNG (grey or palette), or colour PNG with mask_format: colour
    ROOT/day/<split>/<id>.<ext>       paired daytime image of the same place (for day→night adaptation)
    ROOT/tags.csv                     optional image tags for weakly supervised training: ``id,class,class,...``

Without ``tags.csv`` the image tags (``labels`` view) come from the masks. As elsewhere in darkseg, tags leave out
class 0 (the background of weakly supervised methods).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import Field, ValidationError, model_validator

from darkseg.data.base import Transform
from darkseg.data.io import read_image, read_mask
from darkseg.data.listed import Entry, LabelTable, ListedDataset
from darkseg.errors import DataError
from darkseg.schema import StrictModel

SPEC = "dataset.yaml"
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


class FolderSpec(StrictModel):
    """``dataset.yaml`` of a folder dataset."""

    classes: list[str] = Field(min_length=1, description="class names in id order (id 0 first)")
    palette: list[tuple[int, int, int]] | None = Field(None, description="RGB colour of each class")
    ignore_index: int = Field(255, ge=0, le=255, description="mask value of unlabelled pixels")
    mask_format: Literal["index", "colour"] = Field("index", description="index: class ids; colour: RGB palette")
    static_classes: list[str] = Field(default_factory=list, description="classes that do not move (adaptation)")

    @model_validator(mode="after")
    def _consistent(self) -> FolderSpec:
        if len(set(self.classes)) != len(self.classes):
            raise ValueError("class names must be unique")
        if len(self.classes) > 255 or self.ignore_index < len(self.classes):
            raise ValueError(f"ignore_index {self.ignore_index} must be >= the number of classes")
        if self.palette is not None and len(self.palette) != len(self.classes):
            raise ValueError(f"palette has {len(self.palette)} colours for {len(self.classes)} classes")
        if self.mask_format == "colour" and self.palette is None:
            raise ValueError("mask_format: colour needs a palette")
        unknown = [c for c in self.static_classes if c not in self.classes]
        if unknown:
            raise ValueError(f"static_classes {unknown} are not in classes")
        return self


def read_spec(root: Path) -> FolderSpec:
    path = Path(root) / SPEC
    if not path.is_file():
        raise DataError(f"{path}: not found; write it with at least 'classes: [name, ...]' (see docs)")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
        return FolderSpec.model_validate(raw)
    except yaml.YAMLError as err:
        raise DataError(f"{path}: invalid YAML ({err})") from None
    except ValidationError as err:
        e = err.errors()[0]
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        raise DataError(f"{path}: {key}: {e['msg']}") from None


def read_tags(path: Path, classes: Sequence[str]) -> dict[str, np.ndarray]:
    """``id,class,class,...`` rows to multi-hot (C-1,) vectors over classes 1..C-1."""
    index = {c: i for i, c in enumerate(classes)}
    tags: dict[str, np.ndarray] = {}
    with path.open(newline="") as f:
        for number, row in enumerate(csv.reader(f), 1):
            row = [c.strip() for c in row if c.strip()]
            if not row or row[0].startswith("#"):
                continue
            vector = np.zeros(len(classes) - 1, np.float32)
            for name in row[1:]:
                if name not in index:
                    raise DataError(f"{path}:{number}: unknown class {name!r}; classes are {', '.join(classes)}")
                if index[name] > 0:
                    vector[index[name] - 1] = 1.0
            tags[row[0]] = vector
    return tags


def _colour_table(spec: FolderSpec) -> dict[int, int]:
    assert spec.palette is not None
    return {(r << 16) | (g << 8) | b: i for i, (r, g, b) in enumerate(spec.palette)}


class FolderDataset(ListedDataset):
    """A split of a folder dataset (see the module docstring)."""

    def __init__(self, root: str | Path, split: str, views: Sequence[str], transform: Transform | None = None,
                 align_dir: Path | None = None, align_flow: str = "fine", name: str = "folder",
                 keep_unaligned: bool = False) -> None:
        self.root = Path(root)
        self.spec = read_spec(self.root)
        folder = self.root / "images" / split
        if not folder.is_dir():
            have = sorted(p.name for p in (self.root / "images").iterdir() if p.is_dir()) \
                if (self.root / "images").is_dir() else []
            raise DataError(f"{folder}: split folder not found; splits here: {', '.join(have) or 'none'}")
        images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTS)
        masks, days = self.root / "masks" / split, self.root / "day" / split
        entries = []
        for path in images:
            sid = path.relative_to(folder).with_suffix("").as_posix()
            day = self._find(days, sid) if days.is_dir() else None
            entries.append(Entry(sid, path, masks / f"{sid}.png" if masks.is_dir() else None, day))
        tags = read_tags(self.root / "tags.csv", self.spec.classes) if (self.root / "tags.csv").is_file() else None
        super().__init__(f"{name} {split}", entries, self.spec.classes, views, transform, self._index_table(),
                         align_dir, align_flow, tags, keep_unaligned)
        self.static_classes = tuple(self.spec.static_classes)

    @staticmethod
    def _find(folder: Path, sid: str) -> Path:
        for ext in IMAGE_EXTS:
            if (folder / f"{sid}{ext}").is_file():
                return folder / f"{sid}{ext}"
        return folder / f"{sid}.png"  # reported as missing when read

    def _index_table(self) -> LabelTable:
        n, ignore = len(self.spec.classes), self.spec.ignore_index
        valid = np.zeros(256, bool)
        valid[:n] = valid[ignore] = valid[255] = True
        lut = np.where(np.arange(256) < n, np.arange(256), 255).astype(np.uint8)
        return LabelTable(f"class ids of {SPEC} (0..{n - 1}, ignore {ignore})", lut, valid)

    def read_label(self, path: Path) -> np.ndarray:
        if self.spec.mask_format == "index":
            return self.table.apply(read_mask(path), path)
        rgb = read_image(path).astype(np.int64)
        codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        table = _colour_table(self.spec)
        unique, inverse = np.unique(codes, return_inverse=True)
        ids = np.empty(len(unique), np.uint8)
        for k, code in enumerate(unique.tolist()):
            if code not in table and code != 0:
                colour = (code >> 16, (code >> 8) & 255, code & 255)
                raise DataError(f"{path}: colour {colour} is not in the palette of {SPEC}; fix the mask or the palette")
            ids[k] = table.get(code, 255)
        return ids[inverse].reshape(codes.shape)
