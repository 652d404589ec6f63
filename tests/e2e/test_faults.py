"""Fault injection: whatever happens to a run, its folder shows only complete checkpoints and --resume ends with the
weights of an uninterrupted run.

Faults: SIGKILL at random points of checkpoint writing (several rounds), a double Ctrl-C, a damaged newest
checkpoint, a deleted or dangling ``last`` pointer, an unreadable sample in training and in validation, a NaN loss
at a chosen iteration.
"""

import os
import random
import signal
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parents[1] / "engine"))
from toy import ToyDataset, ToyMethod, toy_validator, train_toy  # noqa: E402

from darkseg.data.loader import train_stream  # noqa: E402
from darkseg.engine import checkpoint as ckpt  # noqa: E402
from darkseg.engine.config import TrainConfig  # noqa: E402
from darkseg.engine.distributed import DistEnv  # noqa: E402
from darkseg.engine.trainer import NonFiniteLossError, Trainer  # noqa: E402
from darkseg.errors import DataError  # noqa: E402

PAD = 500_000  # a 2 MB buffer: writing a checkpoint takes most of an iteration's time
ITERATIONS = 150  # more than 8 kill rounds can reach, even where a checkpoint write takes only milliseconds


def assert_only_complete_checkpoints(run: Path, keep_last: int = 2) -> None:
    """Every visible checkpoint loads, and there are at most ``keep_last`` periodic ones."""
    ckpt_dir = run / "checkpoints"
    visible = [p for p in ckpt_dir.iterdir() if p.is_dir() and not p.name.startswith(".")] if ckpt_dir.is_dir() else []
    for p in visible:
        if p.name != "superseded":
            ckpt.load_checkpoint(p)  # raises on a partial checkpoint
    assert len([p for p in visible if p.name.startswith("iter_")]) <= keep_last, [p.name for p in visible]


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _train_in_child(run: Path) -> int:
    """Fork a process that trains (resuming whatever ``run`` holds); the parent gets its pid at once."""
    pid = os.fork()
    if pid == 0:  # the child: a real process receiving real signals; never returns into pytest
        code = 1
        try:
            train_toy(str(run), ITERATIONS, pad=PAD)
            code = 0
        except SystemExit as stop:
            code = int(stop.code)
        finally:
            os._exit(code)
    return pid


def _wait_for_checkpoint(pid: int, run: Path, writing: bool = False, stale: frozenset = frozenset()) -> None:
    """Wait until the child has a checkpoint (``writing``: until it is writing one, in a temporary not in ``stale``)."""
    deadline = time.time() + 60
    ckpt_dir = run / "checkpoints"

    def ready() -> bool:
        if writing:
            return bool({p.name for p in ckpt_dir.glob(".iter_*.tmp")} - stale)
        return (ckpt_dir / ckpt.LAST_POINTER).is_file()

    while not ready():
        assert os.waitpid(pid, os.WNOHANG) == (0, 0), "the training process ended early"
        assert time.time() < deadline
        time.sleep(0.001)


def test_kill_during_checkpoint_writing_then_resume(tmp_path):
    """SIGKILL at random moments (mostly inside a checkpoint write) in several rounds, then a double Ctrl-C."""
    reference = tmp_path / "reference"
    train_toy(str(reference), ITERATIONS, pad=PAD, ckpt_every=0)  # first: the children inherit warmed-up libraries
    rng = random.Random(0)
    run = tmp_path / "run"
    for _ in range(8):
        stale = frozenset(p.name for p in (run / "checkpoints").glob(".*.tmp"))
        pid = _train_in_child(run)
        _wait_for_checkpoint(pid, run, writing=True, stale=stale)
        time.sleep(rng.uniform(0.0, 0.15))  # a write takes about 0.1 s: somewhere in it, or in the next step
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        assert_only_complete_checkpoints(run)
    stale = frozenset(p.name for p in (run / "checkpoints").glob(".*.tmp"))
    pid = _train_in_child(run)
    _wait_for_checkpoint(pid, run, writing=True, stale=stale)
    os.kill(pid, signal.SIGINT)
    time.sleep(0.002)
    os.kill(pid, signal.SIGINT)  # a second Ctrl-C, typically while the stop checkpoint is being written
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) != 0
    assert_only_complete_checkpoints(run)
    train_toy(str(run), ITERATIONS, pad=PAD)  # a start removes what a killed writer left, then finishes the run
    assert not list((run / "checkpoints").glob(".*.tmp"))
    assert_same(load_file(reference / "model_final.safetensors"), load_file(run / "model_final.safetensors"))


def test_sigterm_stops_with_a_checkpoint(tmp_path):
    """A job scheduler's SIGTERM is a Ctrl-C: checkpoint, then exit 128 + 15."""
    run = tmp_path / "run"
    train_toy(str(tmp_path / "warm"), 1)
    pid = _train_in_child(run)
    _wait_for_checkpoint(pid, run)
    os.kill(pid, signal.SIGTERM)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 128 + signal.SIGTERM
    assert_only_complete_checkpoints(run)
    assert ckpt.latest_checkpoint(run / "checkpoints").name.startswith("iter_")


def make(run: Path, data: ToyDataset | None = None, val: ToyDataset | None = None, nan_at: int | None = None,
         **train) -> Trainer:
    torch.manual_seed(0)
    cfg = TrainConfig(iterations=12, log_every=1, keep_last=2, progress=False, optim={"lr": 0.05, "momentum": 0.9},
                      schedule={"name": "poly", "warmup_iters": 2}, **{"ckpt_every": 3, **train})
    data = data or ToyDataset()
    return Trainer(ToyMethod(nan_at=nan_at), cfg, run, torch.device("cpu"), DistEnv(),
                   lambda start: train_stream(data, 5, 3, start, 0, "raise"), batch_size=5,
                   validate=toy_validator(val) if val is not None else None)


def final(run: Path) -> dict[str, torch.Tensor]:
    return load_file(run / "model_final.safetensors")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict[str, torch.Tensor]:
    run = tmp_path_factory.mktemp("uninterrupted")
    make(run, val=ToyDataset(n=4), val_every=3).fit()
    return final(run)


def _stopped_at_7(run: Path) -> None:
    make(run).fit(stop_at=7)  # checkpoints iter_6 (periodic) and iter_7 (the stop)
    assert sorted(p.name for p in (run / "checkpoints").glob("iter_*")) == ["iter_0000006", "iter_0000007"]


@pytest.mark.parametrize("damage", ["truncated_state", "garbage_weights", "missing_weights", "bad_meta"])
def test_damaged_newest_checkpoint_is_skipped(tmp_path, uninterrupted, damage, caplog):
    run = tmp_path / "run"
    _stopped_at_7(run)
    newest = run / "checkpoints" / "iter_0000007"
    if damage == "truncated_state":
        data = (newest / ckpt.STATE).read_bytes()
        (newest / ckpt.STATE).write_bytes(data[: len(data) // 2])
    elif damage == "garbage_weights":
        (newest / ckpt.WEIGHTS).write_bytes(b"\0" * 64)
    elif damage == "missing_weights":
        (newest / ckpt.WEIGHTS).unlink()
    else:
        (newest / ckpt.META).write_text("{")
    resumed = make(run, val=ToyDataset(n=4), val_every=3)
    resumed.fit(resume=True)
    assert "skipped iter_0000007" in caplog.text
    assert (run / "checkpoints" / "superseded" / "iter_0000007").is_dir()  # kept for the user, out of the way
    assert_only_complete_checkpoints(run)
    assert_same(uninterrupted, final(run))


@pytest.mark.parametrize("pointer", ["deleted", "dangling"])
def test_resume_without_a_valid_pointer_takes_the_newest_complete_checkpoint(tmp_path, uninterrupted, pointer):
    run = tmp_path / "run"
    _stopped_at_7(run)
    if pointer == "deleted":
        (run / "checkpoints" / ckpt.LAST_POINTER).unlink()
    else:
        (run / "checkpoints" / ckpt.LAST_POINTER).write_text("iter_0000099\n")
    resumed = make(run, val=ToyDataset(n=4), val_every=3)
    assert resumed.resume().name == "iter_0000007"
    make(run, val=ToyDataset(n=4), val_every=3).fit(resume=True)
    assert_only_complete_checkpoints(run)
    assert_same(uninterrupted, final(run))


def test_bad_training_sample_then_repair_and_resume(tmp_path, uninterrupted):
    run = tmp_path / "run"
    data = ToyDataset(bad={11})
    with pytest.raises(DataError, match="sample 11"):
        make(run, data=data).fit()
    assert_only_complete_checkpoints(run)
    data.bad.clear()
    make(run, data=data, val=ToyDataset(n=4), val_every=3).fit(resume=True)
    assert_same(uninterrupted, final(run))


def test_bad_validation_sample_then_repair_and_resume(tmp_path, uninterrupted):
    run = tmp_path / "run"
    val = ToyDataset(n=4, bad={2})
    with pytest.raises(DataError, match="sample 2"):
        make(run, val=val, val_every=3, ckpt_every=5).fit()  # validation at 3 fails: a checkpoint of 3 is written
    assert ckpt.latest_checkpoint(run / "checkpoints").name == "iter_0000003"
    assert_only_complete_checkpoints(run)
    val.bad.clear()
    make(run, val=val, val_every=3).fit(resume=True)
    assert_same(uninterrupted, final(run))


def test_nan_at_a_chosen_iteration_then_resume(tmp_path, uninterrupted):
    run = tmp_path / "run"
    with pytest.raises(NonFiniteLossError, match="at iteration 9;.*iter_0000006"):
        make(run, nan_at=8).fit()
    assert_only_complete_checkpoints(run)
    make(run, val=ToyDataset(n=4), val_every=3).fit(resume=True)  # e.g. after lowering the LR: here, no NaN
    assert_same(uninterrupted, final(run))
