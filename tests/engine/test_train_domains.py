"""The runner's generic multi-domain wiring: a method that declares training domains gets one dataset per domain
(source from ``data``, target from ``data.target`` with its own augmentation), zipped into ``domain/key`` batches."""

from __future__ import annotations

import torch

from darkseg.config import ExperimentConfig
from darkseg.data.loader import domain_streams
from darkseg.engine import runner
from darkseg.methods.base import TrainDomain


class _Views(torch.utils.data.Dataset):
    def __init__(self, cfg, split, views, transform) -> None:  # noqa: ANN001
        self.cfg, self.split, self.views, self.transform = cfg, split, tuple(views), transform

    def __len__(self) -> int:
        return 3

    def __getitem__(self, item):  # noqa: ANN001
        return {v: torch.tensor([item[0]]) for v in self.views}


class _Method:
    def __init__(self, domains) -> None:  # noqa: ANN001
        self.domains = domains

    def train_domains(self):
        return self.domains

    def train_views(self):
        return ("image", "mask")


def _cfg() -> ExperimentConfig:
    return ExperimentConfig.model_validate({
        "data": {"dataset": "scenes_daynight", "train_split": "train",
                 "augment": {"crop_size": 48},
                 "target": {"dataset": "scenes_daynight", "train_split": "night_train", "augment": {"crop_size": 64}}},
        "model": {"name": "deeplabv2"}, "method": {"name": "supervised"}})


def test_declared_domains_build_one_dataset_each(monkeypatch):
    monkeypatch.setattr(runner, "build_dataset", lambda cfg, split, views, transform: _Views(cfg, split, views,
                                                                                              transform))
    monkeypatch.setattr(runner, "build_target", lambda cfg, views, transform: _Views(
        cfg.target, cfg.target.train_split, views, transform))
    cfg = _cfg()
    method = _Method({"source": TrainDomain("data", ("image", "mask")),
                      "target": TrainDomain("target", ("image", "day", "flow"))})
    sets = runner.training_data(cfg, method)
    assert set(sets) == {"source", "target"}
    assert (sets["source"].split, sets["source"].views) == ("train", ("image", "mask"))
    assert (sets["target"].split, sets["target"].views) == ("night_train", ("image", "day", "flow"))
    assert sets["source"].transform.cfg.crop_size == 48 and sets["target"].transform.cfg.crop_size == 64
    batch = next(domain_streams(sets, 2, 0, 0, 0, "raise"))
    assert set(batch) == {"source/image", "source/mask", "target/image", "target/day", "target/flow"}
    single = runner.training_data(cfg, _Method(None))
    assert isinstance(single, _Views) and single.views == ("image", "mask")
