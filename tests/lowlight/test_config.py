"""LowLightConfig: presets, overrides, validation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from darkseg.lowlight import PRESETS, LowLightConfig


def test_presets_fill_fields_and_overrides_win() -> None:
    maet = LowLightConfig()
    assert maet.preset == "maet" and maet.gamma_range == (2.0, 3.5) and maet.quant_betas == (12, 14, 16)
    brooks = LowLightConfig(preset="brooks")
    assert brooks.ccm == "mix" and brooks.gamma_range == (2.2, 2.2) and brooks.mosaic and brooks.darkness_std == 0
    quiet = LowLightConfig(preset="no-noise")
    assert not quiet.noise and quiet.quantisation == "none" and quiet.gamma_range == maet.gamma_range
    custom = LowLightConfig(preset="brooks", gamma_range=(2.0, 3.0), mosaic=None)
    assert custom.gamma_range == (2.0, 3.0) and custom.mosaic is True  # null means "the preset's value"
    assert set(PRESETS) == {"maet", "brooks", "no-noise"}


def test_dump_round_trips_and_preset_is_fixed() -> None:
    cfg = LowLightConfig(preset="no-noise", darkness_mean=0.2)
    assert LowLightConfig.model_validate(cfg.model_dump(mode="json")) == cfg
    cfg.gamma_range = (2.1, 2.2)
    assert cfg.gamma_range == (2.1, 2.2)
    with pytest.raises(ValidationError):
        cfg.preset = "maet"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"gamma_range": (3.0, 2.0)}, "gamma_range"),
        ({"shot_range": (0.0, 0.01)}, "shot_range"),
        ({"darkness_std": -0.1}, "darkness_std"),
        ({"quant_betas": ()}, "quant_betas"),
        ({"preset": "night"}, "preset"),
        ({"gama_range": (2, 3)}, "gama_range"),
    ],
)
def test_bad_values_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        LowLightConfig(**changes)
