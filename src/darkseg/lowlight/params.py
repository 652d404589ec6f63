"""Per-image parameters of the low-light pipeline: seeding, fixed-order sampling, colour matrices."""

from __future__ import annotations

import hashlib
import math
from statistics import NormalDist
from typing import Any

import torch

from darkseg.lowlight.config import LowLightConfig

# XYZ -> camera matrices of the four cameras used by Brooks et al. 2019 (unprocessing, random_ccm).
XYZ_TO_CAMS: tuple[tuple[tuple[float, float, float], ...], ...] = (
    ((1.0234, -0.2969, -0.2266), (-0.5625, 1.6328, -0.0469), (-0.0703, 0.2188, 0.6406)),
    ((0.4913, -0.0541, -0.0202), (-0.6130, 1.3513, 0.2906), (-0.1564, 0.2151, 0.7183)),
    ((0.8380, -0.2630, -0.0639), (-0.2887, 1.0725, 0.2496), (-0.0627, 0.1427, 0.5438)),
    ((0.6596, -0.2079, -0.0562), (-0.4782, 1.3016, 0.1933), (-0.0970, 0.1581, 0.5181)),
)
# Linear sRGB -> CIE XYZ, D65 white.
SRGB_TO_XYZ: tuple[tuple[float, float, float], ...] = (
    (0.4124564, 0.3575761, 0.1804375),
    (0.2126729, 0.7151522, 0.0721750),
    (0.0193339, 0.1191920, 0.9503041),
)
NUM_UNIFORMS = 12  # uniforms drawn per image, in this order (see sample_params)
_STD_NORMAL = NormalDist()
_EPS = 1e-16
_TINY = 1e-300


def image_seed(seed: int, image_id: str) -> int:
    """63-bit seed of one image from (base seed, image id) via BLAKE2b; stable across processes and platforms."""
    digest = hashlib.blake2b(f"{seed}\x00{image_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def _normal_quantile(u: float) -> float:
    """Standard normal inverse CDF, with u kept inside (0, 1)."""
    return _STD_NORMAL.inv_cdf(min(max(u, _TINY), 1.0 - _EPS))


def _normal_cdf(z: float) -> float:
    """Standard normal CDF through erfc, accurate far into the lower tail."""
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def truncated_normal(u: float, mean: float, std: float, lo: float, hi: float) -> float:
    """Inverse-CDF draw of TruncNormal(mean, std) on [lo, hi] (MAET step 6, exposure factor k)."""
    if std == 0:
        return min(max(mean, lo), hi)
    a, b = (lo - mean) / std, (hi - mean) / std
    if a > 0:  # upper tail: sample the mirrored variable, where the CDF keeps precision
        z = -_normal_quantile(_normal_cdf(-a) - u * (_normal_cdf(-a) - _normal_cdf(-b)))
    else:
        z = _normal_quantile(_normal_cdf(a) + u * (_normal_cdf(b) - _normal_cdf(a)))
    return min(max(mean + std * z, lo), hi)


def rgb_to_camera(weights: list[float]) -> torch.Tensor:
    """sRGB -> camera: mixed XYZ->camera @ sRGB->XYZ, rows normalised to sum 1 (Brooks et al. 2019; MAET step 3)."""
    xyz_to_cam = torch.einsum("n,nij->ij", torch.tensor(weights, dtype=torch.float64),
                              torch.tensor(XYZ_TO_CAMS, dtype=torch.float64))
    rgb_to_cam = xyz_to_cam @ torch.tensor(SRGB_TO_XYZ, dtype=torch.float64)
    return rgb_to_cam / rgb_to_cam.sum(dim=1, keepdim=True)


def sample_params(cfg: LowLightConfig, seed: int) -> dict[str, Any]:
    """Draw one image's parameters from a torch.Generator seeded with ``seed``, in a fixed order (MAET steps 2-8).

    Uniforms u[0..11]: CCM (4), gamma, gain, red, blue, darkness, shot, read jitter, beta; then one 63-bit
    ``field_seed`` for the noise fields. Every draw is made whatever the config, so changing one distribution
    leaves the other parameters of an image unchanged. Steps the config disables are recorded as ``None``; the gain
    is floored at 1e-3.
    """
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(NUM_UNIFORMS, generator=gen, dtype=torch.float64).tolist()
    field_seed = int(torch.randint(0, 2**63 - 1, (1,), generator=gen))
    if cfg.ccm == "choice":
        ccm_index: int | None = min(int(u[0] * len(XYZ_TO_CAMS)), len(XYZ_TO_CAMS) - 1)
        weights = [float(i == ccm_index) for i in range(len(XYZ_TO_CAMS))]
    else:
        ccm_index, total = None, sum(u[:4])
        weights = [w / total for w in u[:4]]

    def uniform(rng: tuple[float, float], v: float) -> float:
        return rng[0] + (rng[1] - rng[0]) * v

    ln_shot = uniform((math.log(cfg.shot_range[0]), math.log(cfg.shot_range[1])), u[9])
    ln_read = cfg.read_slope * ln_shot + cfg.read_intercept + cfg.read_std * _normal_quantile(u[10])
    beta = cfg.quant_betas[min(int(u[11] * len(cfg.quant_betas)), len(cfg.quant_betas) - 1)]
    return {
        "ccm_index": ccm_index,
        "ccm_weights": weights,
        "gamma": uniform(cfg.gamma_range, u[4]),
        "gain": max(cfg.gain_mean + cfg.gain_std * _normal_quantile(u[5]), 1e-3),
        "red": uniform(cfg.red_range, u[6]),
        "blue": uniform(cfg.blue_range, u[7]),
        "darkness": truncated_normal(u[8], cfg.darkness_mean, cfg.darkness_std, *cfg.darkness_range),
        "shot": math.exp(ln_shot) if cfg.noise else None,
        "read": math.exp(ln_read) if cfg.noise else None,
        "beta": beta if cfg.quantisation == "uniform" else None,
        "field_seed": field_seed,
    }
