"""``LowLightSynthesizer``: batched unprocess -> darken -> noise -> quantise -> re-process with per-image seeds."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, overload

import torch
from torch import Tensor

from darkseg.lowlight import pipeline as P
from darkseg.lowlight.config import LowLightConfig
from darkseg.lowlight.params import rgb_to_camera, sample_params


@dataclass
class LowLightTrace:
    """Intermediates of one call; raw tensors are (B, 1, H, W) when the config mosaics, else (B, 3, H, W)."""

    params: list[dict[str, Any]]
    clean_raw: Tensor  # x5: darkened raw before noise
    noisy_raw: Tensor  # x6: after shot/read noise
    quantised_raw: Tensor  # x7: after quantisation
    clean: Tensor  # the output the same parameters give without noise and quantisation
    out: Tensor  # the output, clamped to [0, 1]


@dataclass
class _Batch:
    """Per-image parameters as tensors on the images' device."""

    gamma: Tensor
    forward: Tensor
    inverse: Tensor
    shot: Tensor | None
    read: Tensor | None
    beta: Tensor | None
    field_seeds: list[int]


class LowLightSynthesizer:
    """Darkens sRGB images in [0, 1] with per-image parameters drawn from ``sample_params`` (MAET / Brooks pipeline)."""

    def __init__(self, cfg: LowLightConfig | None = None) -> None:
        self.cfg = cfg if cfg is not None else LowLightConfig()

    def sample(self, seeds: Sequence[int]) -> list[dict[str, Any]]:
        """JSON-serialisable parameters of each image, one generator per seed."""
        return [sample_params(self.cfg, int(s)) for s in seeds]

    @overload
    def __call__(self, images: Tensor, seeds: Sequence[int], return_params: Literal[False] = ...) -> Tensor: ...

    @overload
    def __call__(
        self, images: Tensor, seeds: Sequence[int], return_params: Literal[True]
    ) -> tuple[Tensor, list[dict[str, Any]]]: ...

    def __call__(
        self, images: Tensor, seeds: Sequence[int], return_params: bool = False
    ) -> Tensor | tuple[Tensor, list[dict[str, Any]]]:
        """Dark float32 (B, 3, H, W) images in [0, 1] on the input's device; optionally with the sampled parameters."""
        if len(seeds) != images.shape[0]:
            raise ValueError(f"got {len(seeds)} seeds for a batch of {images.shape[0]} images")
        params = self.sample(seeds)
        out = self.render(images, params)
        return (out, params) if return_params else out

    def render(self, images: Tensor, params: Sequence[dict[str, Any]]) -> Tensor:
        """Dark images for given parameters (e.g. read back from a sidecar): same parameters, same output."""
        return self._run(images, params, trace=False).out

    def trace(self, images: Tensor, params: Sequence[dict[str, Any]]) -> LowLightTrace:
        """Like ``render``, also returning the raw-domain intermediates and the noise-free output."""
        return self._run(images, params, trace=True)

    def _tensors(self, params: Sequence[dict[str, Any]], device: torch.device) -> _Batch:
        """Stack per-image parameters; WB, gain, darkening and CCM folded into one matrix per direction."""

        def col(key: str) -> Tensor:
            return torch.tensor([p[key] for p in params], dtype=torch.float64)

        def scalar(key: str) -> Tensor:
            if any(p[key] is None for p in params):
                raise ValueError(f"parameter {key!r} is None: render with the config the parameters were sampled with")
            return col(key).to(device, torch.float32)[:, None, None, None]

        rgb_to_cam = torch.stack([rgb_to_camera(p["ccm_weights"]) for p in params])
        red, blue = col("red"), col("blue")
        forward = P.forward_matrix(rgb_to_cam, col("gain"), red, blue, col("darkness"))
        inverse = P.inverse_matrix(rgb_to_cam, red, blue)
        cfg = self.cfg
        return _Batch(
            gamma=scalar("gamma"),
            forward=forward.to(device, torch.float32),
            inverse=inverse.to(device, torch.float32),
            shot=scalar("shot") if cfg.noise else None,
            read=scalar("read") if cfg.noise else None,
            beta=scalar("beta") if cfg.quantisation == "uniform" else None,
            field_seeds=[int(p["field_seed"]) for p in params],
        )

    def _run(self, images: Tensor, params: Sequence[dict[str, Any]], trace: bool) -> LowLightTrace:
        """The pipeline; raw-domain copies are kept only when tracing."""
        if images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
            raise ValueError(f"expected float (B, 3, H, W) images, got {images.dtype} {tuple(images.shape)}")
        if len(params) != images.shape[0]:
            raise ValueError(f"got {len(params)} parameter sets for a batch of {images.shape[0]} images")
        cfg = self.cfg
        p = self._tensors(params, images.device)
        # Buffers are reused (``spare`` holds a free tensor of the raw shape) to avoid fresh allocations.
        spare = P.gamma_expand_(P.inverse_tone_curve(images.float().contiguous()), p.gamma)
        raw = P.apply_matrix(p.forward, spare)
        if cfg.mosaic:
            raw = P.mosaic(raw)
            spare = torch.empty_like(raw)
        gens = [torch.Generator(device=images.device).manual_seed(s) for s in p.field_seeds]
        clean_raw = raw.clone() if trace else raw
        if p.shot is not None and p.read is not None:
            normal = _field(spare, gens, "normal")
            P.shot_read_noise_(raw, p.shot, p.read, normal)
        noisy_raw = raw.clone() if trace else raw
        if p.beta is not None:
            P.quantise_uniform_(raw, p.beta, _field(spare, gens, "uniform"))
        elif cfg.quantisation == "round":
            P.quantise_round_(raw, cfg.round_levels)
        out = self._process(raw, p, out=None if cfg.mosaic else spare)
        clean = self._process(clean_raw, p) if trace else out
        return LowLightTrace(list(params), clean_raw, noisy_raw, raw, clean, out)

    def _process(self, raw: Tensor, p: _Batch, out: Tensor | None = None) -> Tensor:
        """Re-process raw to sRGB (MAET steps 9-11): (demosaic), WB + inverse CCM, gamma 1/gamma, clamp to [0, 1].

        ``raw`` is left unchanged; the result goes to ``out`` when given.
        """
        if self.cfg.mosaic:
            raw = P.demosaic_bilinear(raw)
        return P.gamma_compress_(P.apply_matrix(p.inverse, raw, out=out), p.gamma).clamp_(0.0, 1.0)


def _per_image(fill: Callable[[int], object], count: int, device: torch.device) -> None:
    """Run ``fill(i)`` for every image; on CPU with several torch threads, images run in parallel threads."""
    workers = min(torch.get_num_threads(), count) if device.type == "cpu" else 1
    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(fill, range(count)))
    else:
        for i in range(count):
            fill(i)


def _field(field: Tensor, gens: list[torch.Generator], kind: Literal["normal", "uniform"]) -> Tensor:
    """Fill ``field`` with N(0, 1) or U(-1, 1) noise, image i from generator i (independent of batching and threads).

    U(-1, 1) is (i + 0.5) / 32768 for 16-bit integers i, taken four per 64-bit draw (a quarter of the generator calls).
    """
    batch = field.shape[0]
    if kind == "normal":
        _per_image(lambda i: field[i].normal_(generator=gens[i]), batch, field.device)
        return field
    per_image = field[0].numel()
    bits = torch.empty(batch, (per_image + 3) // 4, dtype=torch.int64, device=field.device)
    _per_image(lambda i: bits[i].random_(-(2**63), None, generator=gens[i]), batch, field.device)
    ints = bits.view(torch.int16)[:, :per_image]
    return torch.add(ints, 0.5, out=field.view(batch, per_image)).mul_(1.0 / 32768.0).view_as(field)
