"""Pretrained weights from local files: MXNet ``.params``, torch ``.pth`` / ``.pt``, ``.safetensors``; key reports.

Nothing is downloaded. The MXNet reader implements the NDArray-list binary format (``mx.nd.save``) with NumPy:
little-endian; uint64 list magic 0x112, uint64 reserved; uint64 count + that many NDArrays; uint64 count + that many
names (uint64 length + bytes). One NDArray: uint32 magic (V2 0xF993FAC9 / V3 0xF993FACA: int32 storage type, then
the shape as 32-bit ndim + int64 dims; V1 0xF993FAC8: 32-bit ndim + int64 dims; legacy, no magic: the uint32 is
ndim, then uint32 dims); an empty shape ends the record; then int32 device type, int32 device id, int32 dtype flag
(0 float32, 1 float64, 2 float16, 3 uint8, 4 int32, 5 int8, 6 int64) and the raw data.
"""

from __future__ import annotations

import logging
import re
import struct
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from darkseg.errors import CheckpointError
from darkseg.fileio import atomic_write_bytes
from darkseg.models.backbones.base import Backbone

log = logging.getLogger(__name__)

_LIST_MAGIC = 0x112
_V1, _V2, _V3 = 0xF993FAC8, 0xF993FAC9, 0xF993FACA
_MX_DTYPES = {0: np.float32, 1: np.float64, 2: np.float16, 3: np.uint8, 4: np.int32, 5: np.int8, 6: np.int64}


class _Reader:
    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.pos, self.path = memoryview(data), 0, path

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise CheckpointError(
                f"{self.path}: truncated MXNet .params file (needs {self.pos + n} bytes, has {len(self.data)})"
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def ndarray(self) -> np.ndarray | None:
        (magic,) = self.unpack("I")
        if magic in (_V2, _V3):
            (stype,) = self.unpack("i")
            if stype != 0:
                raise CheckpointError(f"{self.path}: sparse MXNet arrays (storage type {stype}) are not supported")
        if magic in (_V1, _V2, _V3):
            (ndim,) = self.unpack("i")
            shape = self.unpack(f"{max(ndim, 0)}q")
        else:
            ndim = magic
            if ndim > 32:
                raise CheckpointError(f"{self.path}: not an MXNet NDArray record (bad magic/ndim {magic:#x})")
            shape = self.unpack(f"{ndim}I")
        if ndim <= 0:
            return None
        _dev_type, _dev_id, flag = self.unpack("iii")
        if flag not in _MX_DTYPES:
            raise CheckpointError(f"{self.path}: unsupported MXNet dtype flag {flag}")
        dtype = np.dtype(_MX_DTYPES[flag]).newbyteorder("<")
        count = int(np.prod(shape))
        return np.frombuffer(self.take(count * dtype.itemsize), dtype=dtype).reshape(shape)


def read_mxnet_params(path: str | Path) -> dict[str, np.ndarray]:
    """Read an MXNet NDArray-list file (``.params``) into name -> array, without mxnet (format: module docstring)."""
    path = Path(path)
    r = _Reader(path.read_bytes(), path)
    if len(r.data) < 16 or r.unpack("QQ")[0] != _LIST_MAGIC:
        raise CheckpointError(f"{path}: not an MXNet .params file (missing NDArray-list magic 0x112)")
    (n,) = r.unpack("Q")
    arrays = [r.ndarray() for _ in range(n)]
    (n_names,) = r.unpack("Q")
    names = [bytes(r.take(r.unpack("Q")[0])).decode("utf-8") for _ in range(n_names)]
    if n_names != n:
        raise CheckpointError(f"{path}: MXNet .params file has {n} arrays but {n_names} names; cannot map them")
    return {k: v for k, v in zip(names, arrays) if v is not None}


def read_weights(path: str | Path, key: str | None = None) -> dict[str, Tensor]:
    """Read a flat name -> tensor dict from ``.params`` (MXNet), ``.safetensors`` or a torch file (weights only).

    Torch files may wrap the dict under ``state_dict`` or ``model``; a ``module.`` prefix is removed. ``key`` is the
    config key that named the file (said when it is missing).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file not found" + (f"; check {key}" if key else ""))
    try:
        if path.suffix == ".params":
            return {k: torch.from_numpy(v.copy()) for k, v in read_mxnet_params(path).items()}
        if path.suffix == ".safetensors":
            return load_file(str(path))
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except CheckpointError:
        raise
    except Exception as err:  # unreadable, corrupt or pickling objects: one line naming it
        raise CheckpointError(_unreadable(path, err)) from None
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a dict of tensors (a state dict), got {type(obj).__name__}")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _unreadable(path: Path, err: Exception) -> str:
    """Why ``path`` could not be read, without torch's advice to load it unsafely (``weights_only`` off)."""
    text = str(err)
    found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if found:
        return (f"{path}: holds pickled Python objects ({found.group(1)}), which darkseg never unpickles (that "
                "could run code); save only the state dict, e.g. as .safetensors")
    inner = text.split("WeightsUnpickler error:", 1)[-1]
    first = next((line.strip() for line in inner.splitlines() if line.strip()), "")
    if "weights_only" in first:
        first = "not a plain torch state dict"
    return (f"{path}: cannot read weights ({type(err).__name__}: {first}); expected a .safetensors file, a torch "
            "state dict (.pth/.pt) or an MXNet .params file")


@dataclass
class LoadReport:
    """What a weight load did: loaded keys, every missing / unexpected / shape-mismatched key, and the keys the
    name conversion renamed (``converted``) or left out (``dropped``, e.g. an ImageNet classifier)."""

    source: str
    target: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    converted: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def summary(self, examples: int = 3) -> str:
        """One line: counts and the first ``examples`` keys of each problem."""

        def few(items: list[str]) -> str:
            more = f", ... (+{len(items) - examples})" if len(items) > examples else ""
            return ", ".join(items[:examples]) + more

        parts = [f"{len(self.loaded)} loaded"]
        if self.converted or self.dropped:
            parts.append(f"{len(self.converted)} renamed, {len(self.dropped)} dropped by the name conversion")
        if self.missing:
            parts.append(f"{len(self.missing)} missing ({few(self.missing)})")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected ({few(self.unexpected)})")
        if self.mismatched:
            shapes = [f"{k}: file {tuple(a)} vs model {tuple(b)}" for k, a, b in self.mismatched]
            parts.append(f"{len(self.mismatched)} shape mismatches ({few(shapes)})")
        return "; ".join(parts)

    def details(self) -> str:
        """Every problem key, one per line, then the conversion's renamed and dropped keys."""
        lines = [f"missing: {k}" for k in self.missing] + [f"unexpected: {k}" for k in self.unexpected]
        lines += [f"shape mismatch: {k}: file {tuple(a)} vs model {tuple(b)}" for k, a, b in self.mismatched]
        lines += [f"renamed: {k}" for k in self.converted] + [f"dropped: {k}" for k in self.dropped]
        return "\n".join(lines)

    def write(self) -> Path:
        """Write the full key report to ``<tmp>/darkseg/key_report_<source name>.txt`` and return its path."""
        name = re.sub(r"[^\w.-]+", "_", Path(self.source).name) or "weights"
        path = Path(tempfile.gettempdir()) / "darkseg" / f"key_report_{name}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        header = f"weights: {self.source}\nmodel: {self.target}\n{self.summary()}\n\n"
        atomic_write_bytes(path, (header + self.details() + "\n").encode())
        return path


def load_into(
    module: nn.Module,
    state: Mapping[str, Tensor],
    source: str = "<state dict>",
    partial: bool = False,
    *,
    exclude: tuple[str, ...] = (),
    hint: str = "check that the model config matches the checkpoint",
    report: LoadReport | None = None,
) -> LoadReport:
    """Copy matching tensors into ``module`` and report every missing / unexpected / mismatched key.

    Strict unless ``partial``: any problem raises :class:`CheckpointError` (``hint`` says what to do) and nothing
    is loaded. With ``partial`` the matching keys are loaded and the skipped ones are counted in one warning line.
    Nothing matching at all is an error either way (wrong file). Every problem writes the full key list to a
    report file (:meth:`LoadReport.write`) whose path the one-line message names. Module keys under ``exclude``
    prefixes and BN ``num_batches_tracked`` counters are not required. ``report`` carries what a name conversion
    already recorded (renamed / dropped keys).
    """
    target = type(module).__name__
    own = {
        k: v
        for k, v in module.state_dict().items()
        if not k.endswith("num_batches_tracked") and not k.startswith(exclude)
    }
    report = report or LoadReport(source=source, target=target)
    usable: dict[str, Tensor] = {}
    own_counters = {k for k in module.state_dict() if k.endswith("num_batches_tracked")}
    counters = {}  # BN counters: loaded when present (an exact resume needs them), never required
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            if key in own_counters:
                counters[key] = value
            continue
        if key not in own:
            report.unexpected.append(key)
        elif tuple(value.shape) != tuple(own[key].shape):
            report.mismatched.append((key, tuple(value.shape), tuple(own[key].shape)))
        else:
            usable[key] = value
    report.missing = [k for k in own if k not in state]
    report.loaded = list(usable)
    if not usable:
        raise CheckpointError(
            f"{source}: nothing in the file fits {target} ({report.summary()}; key list in {report.write()}); "
            "the file is for another architecture or size, check model.backbone (name, depth, variant, width, blocks)"
        )
    if not report.complete:
        if not partial:
            raise CheckpointError(
                f"{source}: does not fit {target}: {report.summary()}; key list in {report.write()}; {hint}"
            )
        log.warning("partial load of %s into %s: %s; key list in %s", source, target, report.summary(),
                    report.write())
    module.load_state_dict({**usable, **counters}, strict=False)
    log.info("loaded %s into %s: %s", source, target, report.summary())
    return report


def load_pretrained_backbone(backbone: Backbone, path: str | Path, partial: bool = False) -> LoadReport:
    """Read ``path``, convert its naming with ``backbone.convert_pretrained`` and load it (fusions excluded)."""
    hint = (
        "check model.backbone (name, depth, width, blocks) or set model.backbone.pretrained_partial: true "
        "to load only the matching tensors"
    )
    if not Path(path).is_file():
        raise CheckpointError(
            f"{path}: pretrained weights file not found (model.backbone.pretrained); fix the path, make the file (the "
            "scenes recipes' backbone: darkseg pretrain configs/pretrain/scenes_pretrain_wideresnet38.yaml), or set "
            "model.backbone.pretrained=null to train from scratch"
        )
    raw = read_weights(path)
    state = backbone.convert_pretrained(raw)
    report = LoadReport(source=str(path), target=type(backbone).__name__)
    report.converted = [k for k in state if k not in raw]
    kept = {id(v) for v in state.values()}
    report.dropped = [k for k, v in raw.items() if id(v) not in kept]
    return load_into(backbone, state, str(path), partial, exclude=("fusions.",), hint=hint, report=report)
