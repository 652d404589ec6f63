"""benchmarks/gpu_check.py: one line and exit 0 without CUDA; its CPU dry mode runs the rows, the compile variant,
the DGKD ratio and the PAMR / low-light throughput; a failing recipe is reported and makes the exit status 1."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules["gpu_check"]


def _rows(out: str) -> dict[tuple[str, str], list[float]]:
    rows = {}
    for line in out.splitlines():
        m = re.match(r"^(\S+)\s+(\S+)\s+(\d+)×(\d+)\s+(\S+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", line)
        if m:
            rows[m[1], m[2]] = [float(m[i]) for i in (3, 4, 6, 7, 8, 9)]
    return rows


def test_without_cuda_prints_one_line_and_exits_0(gpu_check, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main([]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) == 1 and "no CUDA" in out


def test_dry_run_times_the_dgkd_pair_and_the_ops(gpu_check, capsys):
    assert gpu_check.main(["--dry", "--only", "dgkd_wlss/student", "dgkd_wlss/dgkd", "--compile", "none"]) == 0
    out = capsys.readouterr().out
    rows = _rows(out)
    assert set(rows) == {(r, v) for r in ("dgkd_wlss/student", "dgkd_wlss/dgkd") for v in ("fp32", "bf16")}
    for batch, crop, ms, images_s, peak, _ in rows.values():
        assert (batch, crop) == (2, 64) and ms > 0 and peak > 0
        # both printed with one decimal: images/s ± 0.05, plus the rounding of ms carried through 2000 / ms
        assert images_s == pytest.approx(2000 / ms, abs=0.051 + 2000 / ms**2 * 0.051)
    ratio = re.search(r"ratio dgkd_wlss/dgkd / dgkd_wlss/student \(fp32\): ([\d.]+)", out)
    assert ratio and float(ratio[1]) == pytest.approx(
        rows["dgkd_wlss/dgkd", "fp32"][2] / rows["dgkd_wlss/student", "fp32"][2], abs=0.011)
    assert re.search(r"PAMR B=2 C=21 32²: +[\d.]+ images/s", out)
    assert re.search(r"low-light synthesis .*: +[\d.]+ images/s", out)


def test_dry_run_compiles_the_student(gpu_check, capsys):
    assert gpu_check.main(["--dry", "--only", "dgkd_wlss/student"]) == 0
    assert ("dgkd_wlss/student", "bf16+compile") in _rows(capsys.readouterr().out)


def test_a_failing_recipe_is_reported_and_fails_the_check(gpu_check, monkeypatch, capsys):
    monkeypatch.setattr(gpu_check, "RECIPES", (("broken", "missing.yaml", "configs/missing.yaml"),))
    assert gpu_check.main(["--dry", "--compile", "none"]) == 1
    out = capsys.readouterr().out
    assert "broken" in out and "FAILED" in out and "failed: broken fp32, broken bf16" in out
