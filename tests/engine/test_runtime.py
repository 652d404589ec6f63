"""Runtime defaults: CPU threads per process."""

import os

from darkseg.engine.config import TrainConfig
from darkseg.engine.runner import resolve_threads


def test_threads_default_to_a_few_per_process(monkeypatch):
    assert TrainConfig().threads == "auto"
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert resolve_threads("auto") == 4  # not torch's default of every core: a busy machine is the usual case
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "32")
    assert resolve_threads("auto") == 2
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert resolve_threads("auto") == 1
    assert resolve_threads(3) == 3
