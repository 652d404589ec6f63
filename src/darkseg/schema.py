"""Base class for typed config sections: unknown keys and wrong types fail at load time."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict


class StrictModel(BaseModel):
    """A config section: extra keys are errors, values are validated on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


def _off_from_false(value: object) -> object:
    """YAML reads a bare ``off`` as ``False``: accept it as the string ``"off"``."""
    return "off" if value is False else value


AmpMode = Annotated[Literal["off", "bf16", "fp16"], BeforeValidator(_off_from_false)]
"""Mixed precision: off, bfloat16 or float16 autocast."""
