"""Monocular depth estimators (Depth Anything, ZoeDepth, DPT/MiDaS) through Hugging Face ``transformers``.

Weights are read from a local directory only (``from_pretrained(DIR)``): ``config.json``, the weights and the
``preprocessor_config.json`` of the model's image processor, which does the resizing/normalisation exactly as the
model card does (PIL backend, so torchvision is not needed). The prediction is resized back to the input size
bilinearly (as Depth Anything's ``run.py``), ZoeDepth's reflect padding is cropped, ZoeDepth's metric depth is
inverted, and each map is min-max normalised to [0, 1] with near = 1 (relative inverse depth, the data contract).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from darkseg.errors import DarksegError
from darkseg.registry import Registry


@dataclass(frozen=True)
class DepthModelSpec:
    """A depth model family: its transformers class, config ``model_type`` and the Hub id of its weights."""

    model_class: str
    model_type: str
    hub_id: str
    metric: bool  # predicts metric depth (converted to inverse depth) instead of relative inverse depth


DEPTH_MODELS: Registry[DepthModelSpec] = Registry("depth model")
for _name, _spec in {
    "depth-anything-small": DepthModelSpec(
        "DepthAnythingForDepthEstimation", "depth_anything", "LiheYoung/depth-anything-small-hf", False
    ),
    "depth-anything-base": DepthModelSpec(
        "DepthAnythingForDepthEstimation", "depth_anything", "LiheYoung/depth-anything-base-hf", False
    ),
    "depth-anything-large": DepthModelSpec(
        "DepthAnythingForDepthEstimation", "depth_anything", "LiheYoung/depth-anything-large-hf", False
    ),
    "zoedepth": DepthModelSpec("ZoeDepthForDepthEstimation", "zoedepth", "Intel/zoedepth-nyu-kitti", True),
    "dpt-midas": DepthModelSpec("DPTForDepthEstimation", "dpt", "Intel/dpt-hybrid-midas", False),
}.items():
    DEPTH_MODELS.register(_name)(_spec)

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
_MIN_DEPTH = 1e-3  # metric depth floor before inversion


def check_weights_dir(model: str, weights: Path) -> DepthModelSpec:
    """Validate a local weights directory for ``model``; the error line says how to obtain and place it."""
    spec = DEPTH_MODELS.get(model, key="--model")
    how = (
        f"download the Hugging Face model '{spec.hub_id}' on a machine with internet "
        f"(e.g. `hf download {spec.hub_id} --local-dir DIR`) and pass that folder as --weights; it must contain "
        f"config.json, preprocessor_config.json and the weights ({' or '.join(WEIGHT_FILES[::2])})"
    )
    if not weights.is_dir():
        raise DarksegError(f"--weights {weights}: no such directory; {how}")
    missing = [f for f in ("config.json", "preprocessor_config.json") if not (weights / f).is_file()]
    if not any((weights / f).is_file() for f in WEIGHT_FILES):
        missing.append("model weights")
    if missing:
        raise DarksegError(f"--weights {weights}: missing {', '.join(missing)}; {how}")
    try:
        model_type = json.loads((weights / "config.json").read_text()).get("model_type")
    except (OSError, ValueError) as err:
        raise DarksegError(f"--weights {weights}/config.json: unreadable ({err}); {how}") from None
    if model_type != spec.model_type:
        raise DarksegError(
            f"--weights {weights}: config.json has model_type {model_type!r} but --model {model} needs "
            f"{spec.model_type!r}; {how}"
        )
    return spec


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` picks CUDA when available; asking for CUDA without it is a user error."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DarksegError(f"--device {device}: CUDA is not available here; use --device cpu")
    return device


def minmax(depth: torch.Tensor) -> torch.Tensor:
    """Min-max normalise one map to [0, 1]; a constant map becomes all zeros."""
    lo, hi = depth.min(), depth.max()
    return (depth - lo) / (hi - lo) if hi > lo else torch.zeros_like(depth)


class DepthEstimator:
    """A transformers depth model + its image processor: RGB uint8 images -> relative inverse depth in [0, 1]."""

    def __init__(self, model: str, weights: Path | str, device: str | torch.device | None = None) -> None:
        weights = Path(weights)
        self.spec = check_weights_dir(model, weights)
        self.device = resolve_device(device)
        try:
            import transformers
        except ImportError:
            raise DarksegError("darkseg depth needs transformers: pip install 'darkseg[depth]'") from None
        cls = self.spec.model_class
        try:
            self.processor: Any = transformers.AutoImageProcessor.from_pretrained(weights, backend="pil")
            net, info = getattr(transformers, cls).from_pretrained(weights, output_loading_info=True)
        except Exception as err:  # whatever the library raises, the cause is the weights folder
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise DarksegError(
                f"--weights {weights}: cannot load {cls} ({first}); re-download {self.spec.hub_id}"
            ) from None
        if info["missing_keys"]:
            raise DarksegError(
                f"--weights {weights}: {len(info['missing_keys'])} {cls} parameters are missing from the weights "
                f"(e.g. {min(info['missing_keys'])}); re-download {self.spec.hub_id}"
            )
        self.net = net.to(self.device).eval()
        self.unpad = bool(getattr(self.processor, "do_pad", False)) and self.spec.model_type == "zoedepth"

    @torch.inference_mode()
    def __call__(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Depth maps (float32 HxW in [0, 1], near = 1) at each input's size; same-shape inputs share a batch."""
        pixels = self.processor(images=images, input_data_format="channels_last")["pixel_values"]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, p in enumerate(pixels):
            groups.setdefault(tuple(p.shape), []).append(i)
        out: list[np.ndarray] = [np.empty(0, np.float32)] * len(images)
        for idx in groups.values():
            batch = torch.from_numpy(np.stack([pixels[i] for i in idx])).to(self.device)
            pred = self.net(pixel_values=batch).predicted_depth.float()
            for i, p in zip(idx, pred):
                out[i] = self._postprocess(p, images[i].shape[:2]).cpu().numpy()
        return out

    def _postprocess(self, pred: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Back to the input size (removing ZoeDepth's padding), to inverse depth, min-max to [0, 1]."""
        h, w = size
        # ZoeDepth's processor reflect-pads by int(sqrt(side / 2) * 3) on each side before resizing.
        ph, pw = (int(np.sqrt(h / 2) * 3), int(np.sqrt(w / 2) * 3)) if self.unpad else (0, 0)
        pred = F.interpolate(pred[None, None], size=(h + 2 * ph, w + 2 * pw), mode="bilinear", align_corners=False)
        pred = pred[0, 0, ph : ph + h, pw : pw + w]
        if self.spec.metric:
            pred = 1.0 / pred.clamp_min(_MIN_DEPTH)
        return minmax(pred)
