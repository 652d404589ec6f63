"""bf16 autocast only where the CPU computes bfloat16 natively; elsewhere float32 with one warning."""

import logging

import pytest
import torch

from darkseg import precision
from darkseg.engine.trainer import autocast_context


@pytest.mark.parametrize("native", [True, False])
def test_bf16_on_cpu_follows_native_support(monkeypatch, caplog, native):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    precision._warn_once.cache_clear()
    with caplog.at_level(logging.WARNING, logger="darkseg.precision"):
        with autocast_context("bf16", torch.device("cpu")):
            y = torch.nn.functional.linear(torch.rand(2, 4), torch.rand(3, 4))
        autocast_context("bf16", torch.device("cpu"))  # warned once per key, not per step
    assert y.dtype == (torch.bfloat16 if native else torch.float32)
    warnings = [r for r in caplog.records if "no native bfloat16" in r.getMessage()]
    assert len(warnings) == (0 if native else 1) and (native or "train.amp" in warnings[0].getMessage())


def test_off_and_cuda_modes_are_kept():
    assert precision.effective_amp("off", "cpu") == "off"
    assert precision.effective_amp("bf16", "cuda") == "bf16"
    assert precision.effective_amp("fp16", "cuda") == "fp16"
