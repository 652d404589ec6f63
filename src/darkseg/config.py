"""The experiment config: typed sections assembled from the components, loaded from YAML with overrides.

A YAML file may name ``base: other.yaml`` (or a list): bases are loaded first (paths relative to the file) and
deep-merged, the file's own keys winning. Command-line overrides ``key.sub=value`` are parsed as YAML values.
Every key, type and value is checked before any work starts; the first problem is reported as one line.
"""

from __future__ import annotations

import copy
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Union

import yaml
from pydantic import BaseModel, Field, ValidationError

from darkseg.data.config import DataConfig
from darkseg.engine.config import EvalConfig, TrainConfig
from darkseg.errors import ConfigError
from darkseg.methods.asdt import ASDTMethodConfig
from darkseg.methods.cam import CAMMethodConfig
from darkseg.methods.ccdistill import CCDistillConfig
from darkseg.methods.dania import DANIAConfig
from darkseg.methods.dgkd_wlss import DGKDConfig
from darkseg.methods.seam import SEAMMethodConfig
from darkseg.methods.ssss import SSSSMethodConfig
from darkseg.methods.supervised import SupervisedConfig
from darkseg.models.factory import ModelConfig
from darkseg.schema import StrictModel

MethodConfig = Annotated[Union[CAMMethodConfig, SSSSMethodConfig, DGKDConfig, ASDTMethodConfig, SEAMMethodConfig,
                         SupervisedConfig, CCDistillConfig, DANIAConfig],
                       Field(discriminator="name")]


class ExperimentConfig(StrictModel):
    """One experiment: data, model (the deployed network), method (how it is trained), training, evaluation."""

    name: str = "experiment"
    seed: int = 0
    output_dir: str | None = Field(None, description="run folder; default runs/<name>")
    data: DataConfig = DataConfig()
    model: ModelConfig
    method: MethodConfig
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()

    def run_dir(self) -> Path:
        return Path(self.output_dir or f"runs/{self.name}")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def _deep_merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in override.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def load_yaml_tree(path: Path, _seen: tuple[Path, ...] = ()) -> dict:
    """A YAML mapping with its ``base`` files merged in."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    if path.resolve() in _seen:
        raise ConfigError(f"{path}: circular 'base' reference")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} invalid YAML ({getattr(err, 'problem', err)})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config must be a YAML mapping")
    bases = raw.pop("base", [])
    merged: dict = {}
    for b in [bases] if isinstance(bases, str) else bases:
        merged = _deep_merge(merged, load_yaml_tree(path.parent / b, (*_seen, path.resolve())))
    return _deep_merge(merged, raw)


def apply_overrides(tree: dict, overrides: list[str]) -> dict:
    """Apply ``key.sub=value`` overrides (values parsed as YAML) to a raw config tree."""
    tree = copy.deepcopy(tree)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected key.sub=value")
        try:
            value = yaml.safe_load(text) if text != "" else ""
        except yaml.YAMLError:
            value = text
        node = tree
        parts = key.split(".")
        for p in parts[:-1]:
            if not isinstance(node.get(p, {}), dict):
                raise ConfigError(f"override {key!r}: {p!r} is not a section")
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    return tree


def _fields_at(model: type[BaseModel], path: tuple[Any, ...], tags: tuple[Any, ...]) -> list[str] | None:
    """Field names of the config section at ``path``; unions are resolved by the tags found in ``tags``."""
    cls: Any = model
    for part in path:
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
            return None
        if part not in cls.model_fields:
            return None
        cls = _section_type(cls.model_fields[part].annotation, tags)
    return list(cls.model_fields) if isinstance(cls, type) and issubclass(cls, BaseModel) else None


def _section_type(annotation: Any, loc: tuple[Any, ...]) -> Any:
    """The BaseModel type inside an annotation (Optional, Annotated, or a union resolved by a tag in ``loc``)."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _section_type(typing.get_args(annotation)[0], loc)
    if origin in (Union, types.UnionType):
        models = [a for a in typing.get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)]
        for m in models:
            tag = m.model_fields.get("name")
            if tag is not None and tag.default in loc:
                return m
        return models[0] if len(models) == 1 else None
    return annotation


def format_validation_error(err: ValidationError, model: type[BaseModel] = ExperimentConfig) -> str:
    """One line: the first invalid key, what was given, and what is allowed."""
    e = err.errors()[0]
    raw_loc = tuple(e["loc"])
    loc = _strip_tags(model, raw_loc)
    key = ".".join(str(p) for p in loc) or "(top level)"
    if e["type"] == "extra_forbidden":
        parent = loc[:-1]
        allowed = _fields_at(model, parent, raw_loc)
        where = ".".join(str(p) for p in parent) or "the top level"
        hint = f"; allowed keys under {where}: {', '.join(allowed)}" if allowed else ""
        return f"unknown config key {key!r}{hint}"
    if e["type"] == "missing":
        return f"config key {key!r} is required"
    given = e.get("input")
    given_text = f" (got {given!r})" if not isinstance(given, (dict, list)) else ""
    return f"config key {key!r}: {e['msg']}{given_text}"


def _is_union(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _is_union(typing.get_args(annotation)[0])
    return origin in (Union, types.UnionType) and sum(
        isinstance(a, type) and issubclass(a, BaseModel) for a in typing.get_args(annotation)
    ) > 1


def _strip_tags(model: type[BaseModel], loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop the discriminator tags pydantic inserts into error locations (e.g. ``model.ssss.backbone``)."""
    out: list[Any] = []
    cls: Any = model
    skip_tag = False
    for part in loc:
        if skip_tag:
            skip_tag = False
            continue
        out.append(part)
        if isinstance(cls, type) and issubclass(cls, BaseModel) and part in cls.model_fields:
            annotation = cls.model_fields[part].annotation
            skip_tag = _is_union(annotation)
            cls = _section_type(annotation, loc)
        else:
            cls = None
    return tuple(out)


def inherit_eval_data(tree: dict) -> dict:
    """A partial ``eval.data`` of the training dataset inherits the keys it does not set from ``data``.

    An ``eval.data`` naming another ``dataset`` (train on VOC, test on LIS) inherits nothing: keys such as
    ``class_map`` or ``mask_dir`` of one dataset are wrong for another.
    """
    section, data = tree.get("eval"), tree.get("data", {})
    if not (isinstance(section, dict) and isinstance(section.get("data"), dict) and isinstance(data, dict)):
        return tree
    default = DataConfig.model_fields["dataset"].default
    if section["data"].get("dataset", data.get("dataset", default)) != data.get("dataset", default):
        return tree
    tree = copy.deepcopy(tree)
    tree["eval"]["data"] = _deep_merge(data, section["data"])
    return tree


def _override_of(err: ValidationError, overrides: list[str]) -> str | None:
    """The override that set the first invalid key (or a section holding it, or an unknown key under it)."""
    first = err.errors()[0]
    key = [str(p) for p in _strip_tags(ExperimentConfig, tuple(first["loc"]))]
    for item in reversed(overrides):  # the last override of a key is the one that counts
        parts = item.partition("=")[0].split(".")
        if key[: len(parts)] == parts or (first["type"] == "extra_forbidden" and parts[: len(key)] == key):
            return item
    return None


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Load, merge, override and validate an experiment config; an invalid value names its override or file."""
    overrides = overrides or []
    tree = inherit_eval_data(apply_overrides(load_yaml_tree(Path(path)), overrides))
    try:
        return ExperimentConfig.model_validate(tree)
    except ValidationError as err:
        item = _override_of(err, overrides)
        where = f"override {item!r}" if item else str(path)
        raise ConfigError(f"{where}: {format_validation_error(err)}") from None
