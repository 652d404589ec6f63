"""Config section of the low-light synthesis: a preset plus per-field overrides."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from darkseg.lowlight.presets import PRESETS
from darkseg.schema import StrictModel

Range = tuple[float, float]


class LowLightConfig(StrictModel):
    """Distributions of the pipeline parameters; fields not given (or null) take the preset's value.

    ``preset`` is fixed after construction (build a new config to switch presets).
    """

    preset: Literal["maet", "brooks", "no-noise"] = Field(default="maet", frozen=True)
    ccm: Literal["choice", "mix"] = "choice"  # one of Brooks' 4 cameras, or a random convex mix of them
    gamma_range: Range = (2.0, 3.5)  # gamma ~ U(range)
    gain_mean: float = 0.8  # digital gain g ~ N(mean, std)
    gain_std: float = 0.1
    red_range: Range = (1.9, 2.4)  # white-balance red gain r ~ U(range)
    blue_range: Range = (1.5, 1.9)  # white-balance blue gain b ~ U(range)
    darkness_mean: float = 0.1  # exposure factor k ~ TruncNormal(mean, std) on darkness_range
    darkness_std: float = 0.08
    darkness_range: Range = (0.01, 1.0)
    noise: bool = True  # heteroscedastic shot + read noise in the raw domain
    shot_range: Range = (1e-4, 0.012)  # lambda_shot log-uniform on this range
    read_slope: float = 2.18  # ln lambda_read = slope * ln lambda_shot + intercept + N(0, read_std^2)
    read_intercept: float = 1.20
    read_std: float = 0.26
    quantisation: Literal["uniform", "round", "none"] = "uniform"  # MAET's U(+-1/(255 beta)), or true rounding
    quant_betas: tuple[int, ...] = (12, 14, 16)  # beta ~ uniform choice (uniform mode)
    round_levels: int = 255  # rounding mode: x -> round(x * levels) / levels (255 = 8 bit)
    mosaic: bool = False  # RGGB mosaic before noise, bilinear demosaic after

    @model_validator(mode="before")
    @classmethod
    def _fill_from_preset(cls, data: Any) -> Any:
        """Replace missing or null fields by the preset's values."""
        if not isinstance(data, dict):
            return data
        filled = dict(data)
        for key, value in PRESETS.get(filled.get("preset") or "maet", {}).items():
            if filled.get(key) is None:
                filled[key] = value
        return {k: v for k, v in filled.items() if v is not None}

    @model_validator(mode="after")
    def _check_values(self) -> LowLightConfig:
        """Ranges ordered and positive where the physics needs it."""
        for name in ("gamma_range", "red_range", "blue_range", "darkness_range", "shot_range"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"{name} must satisfy 0 < low <= high, got ({lo}, {hi})")
        for name in ("gain_mean", "darkness_mean"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("gain_std", "darkness_std", "read_std"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.quant_betas or min(self.quant_betas) <= 0:
            raise ValueError(f"quant_betas must be a non-empty list of positive ints, got {list(self.quant_betas)}")
        if self.round_levels < 1:
            raise ValueError(f"round_levels must be >= 1, got {self.round_levels}")
        return self
