"""Atomic checkpoints, weights-only loading, strict key reports, partial loading."""

import pytest
import torch

from darkseg.engine import checkpoint as ckpt
from darkseg.errors import CheckpointError


def test_save_load_roundtrip_and_pointer(tmp_path):
    w = {"net.a": torch.arange(4.0), "net.b": torch.ones(2, 2)}
    state = {"iteration": 7, "rng": {"torch": torch.get_rng_state()}}
    ckpt.save_checkpoint(tmp_path, "iter_0000007", w, state, {"iteration": 7}, keep_last=2)
    path = ckpt.latest_checkpoint(tmp_path)
    weights, st, meta = ckpt.load_checkpoint(path)
    assert torch.equal(weights["net.a"], w["net.a"]) and st["iteration"] == 7 and meta["iteration"] == 7
    for i in (8, 9, 10):
        ckpt.save_checkpoint(tmp_path, f"iter_{i:07d}", w, state, {}, keep_last=2)
    assert sorted(p.name for p in tmp_path.glob("iter_*")) == ["iter_0000009", "iter_0000010"]
    assert not list(tmp_path.glob(".*tmp"))


def test_interrupted_write_keeps_last_good(tmp_path, monkeypatch):
    w = {"x": torch.zeros(1)}
    ckpt.save_checkpoint(tmp_path, "iter_0000001", w, {"iteration": 1}, {})

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", boom)
    with pytest.raises(OSError):
        ckpt.save_checkpoint(tmp_path, "iter_0000002", w, {"iteration": 2}, {})
    assert ckpt.latest_checkpoint(tmp_path).name == "iter_0000001"
    assert not (tmp_path / "iter_0000002").exists()
    assert not list(tmp_path.glob(".*tmp"))


def test_checkpoint_weights_are_loaded_weights_only(tmp_path):
    ckpt.save_checkpoint(tmp_path, "c", {"x": torch.zeros(1)}, {"iteration": 1}, {})
    torch.save({"iteration": Unsafe()}, tmp_path / "c" / ckpt.STATE)
    with pytest.raises(CheckpointError, match="unreadable trainer state"):
        ckpt.load_checkpoint(tmp_path / "c")


class Unsafe:
    """An arbitrary pickled object: weights_only loading must refuse it."""


@pytest.mark.parametrize("keep_last", [1, 2, 3])
def test_pruning_keeps_keep_last_and_a_newest_complete_checkpoint(tmp_path, keep_last, monkeypatch):
    w = {"x": torch.zeros(1)}
    for i in range(1, 6):
        ckpt.save_checkpoint(tmp_path, f"iter_{i:07d}", w, {"iteration": i}, {"iteration": i}, keep_last=keep_last)
    names = sorted(p.name for p in tmp_path.glob("iter_*"))
    assert names == [f"iter_{i:07d}" for i in range(6 - keep_last, 6)]
    # A crash at the rename of the next one: the newest complete checkpoint is still there, nothing half-deleted.
    monkeypatch.setattr(ckpt.os, "replace", _fail_on_rename_into(tmp_path / "iter_0000006", ckpt.os.replace))
    with pytest.raises(OSError):
        ckpt.save_checkpoint(tmp_path, "iter_0000006", w, {"iteration": 6}, {"iteration": 6}, keep_last=keep_last)
    assert ckpt.latest_checkpoint(tmp_path).name == "iter_0000005"
    assert all(ckpt.load_checkpoint(p) for p in tmp_path.glob("iter_*"))


def _fail_on_rename_into(target, replace):
    def fake(src, dst):
        if dst == target:
            raise OSError("killed")
        return replace(src, dst)

    return fake
