"""Named parameter sets of the low-light pipeline; ``maet`` is the field defaults of ``LowLightConfig``."""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    # Cui et al. (MAET, ICCV 2021) degradation, as used for dark VOC in DGKD-WLSS, with correct CCM rows.
    "maet": {},
    # Brooks et al. 2019 unprocessing: mixed CCM, gamma 2.2, RGGB mosaic + bilinear demosaic, no darkening,
    # no quantisation.
    "brooks": {
        "ccm": "mix",
        "gamma_range": (2.2, 2.2),
        "darkness_mean": 1.0,
        "darkness_std": 0.0,
        "quantisation": "none",
        "mosaic": True,
    },
    # Darkening only (the released dark VOC appears noise-free).
    "no-noise": {"noise": False, "quantisation": "none"},
}
