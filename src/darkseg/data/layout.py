"""What kind of dataset tree lies at a root, so that a ``data.dataset`` that does not fit it fails naming both."""

from __future__ import annotations

from pathlib import Path

from darkseg.data.scenes import META as SCENES_META
from darkseg.errors import DataError

# Marker paths of the tree kinds that can be told apart without reading files; the first match names the kind.
_MARKERS: tuple[tuple[str, str, str], ...] = (
    ("scenes", SCENES_META, "the built-in scenes benchmark"),
    ("voc", "ImageSets/Segmentation", "a VOC-layout tree"),
    ("vocdevkit", "VOCdevkit/VOC2012/ImageSets/Segmentation", "a VOCdevkit folder"),
)
# What each checked dataset expects at data.root.
_EXPECTS = {
    "scenes": "the scenes benchmark (scenes.json; generated on first use into a new or empty folder)",
    "voc": "a VOC-layout tree (ImageSets/Segmentation/<split>.txt, JPEGImages/, SegmentationClass*/)",
}
_FIX_ROOT = {
    "scenes": "point data.root at a new or empty folder (the benchmark is generated there)",
    "voc": "point data.root at the folder that holds ImageSets/ and JPEGImages/",
}


def describe_tree(root: Path) -> tuple[str | None, str]:
    """(kind, one-line description) of the folder ``root``; kind is scenes, voc, vocdevkit or None (unknown, empty)."""
    root = Path(root)
    for kind, marker, text in _MARKERS:
        if (root / marker).exists():
            return kind, f"{text} ({marker})"
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir())
    if not names:
        return None, "an empty folder"
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    return None, f"{', '.join(names[:5])}{more}"


def check_tree(root: Path, dataset: str) -> None:
    """Raise a DataError when the tree at ``root`` is not one ``dataset`` (scenes or voc) can read.

    A missing root is left to the reader (scenes generates it, the others say it is missing); an empty folder
    fits ``scenes`` only.
    """
    root = Path(root)
    if dataset not in _EXPECTS or not root.is_dir():
        return
    kind, found = describe_tree(root)
    if kind == dataset or (dataset == "scenes" and not any(root.iterdir())):
        return
    if kind == "vocdevkit":
        fix = ("set " + ("data.dataset: voc and " if dataset != "voc" else "")
               + f"data.root: {root / 'VOCdevkit' / 'VOC2012'}")
    elif kind in _EXPECTS:
        fix = f"set data.dataset: {kind}"
    else:
        fix = _FIX_ROOT[dataset]
    raise DataError(
        f"{root}: data.dataset is {dataset!r}, which expects {_EXPECTS[dataset]} at data.root, but found {found}; "
        f"{fix}"
    )
