"""Physically based low-light synthesis: unprocess -> darken -> shot/read noise -> quantise -> re-process."""

PIPELINE_VERSION = 1
"""Bumped whenever the synthesis of a given (config, seed) changes; caches made with another version are stale."""

from darkseg.lowlight.config import LowLightConfig  # noqa: E402
from darkseg.lowlight.params import image_seed, sample_params
from darkseg.lowlight.presets import PRESETS
from darkseg.lowlight.synthesizer import LowLightSynthesizer, LowLightTrace
from darkseg.lowlight.tree import SynthReport, synthesize_tree

__all__ = [
    "PIPELINE_VERSION",
    "PRESETS",
    "LowLightConfig",
    "LowLightSynthesizer",
    "LowLightTrace",
    "SynthReport",
    "image_seed",
    "sample_params",
    "synthesize_tree",
]
