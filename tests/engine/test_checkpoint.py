"""Atomic checkpoints, weights-only loading, strict key reports, partial loading."""

import pytest
import torch
from torch import nn

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


def test_strict_load_lists_keys_and_partial_option(tmp_path):
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Conv2d(4, 2, 1))
    state = {"0.weight": torch.zeros(4, 3, 1, 1), "0.bias": torch.zeros(4), "extra.w": torch.zeros(1),
             "1.weight": torch.zeros(5, 4, 1, 1)}
    with pytest.raises(CheckpointError) as err:
        ckpt.load_into(net, state, "ckpt.pth")
    msg = str(err.value)
    assert "missing keys (1.bias)" in msg and "unexpected keys (extra.w)" in msg and "shape-mismatched" in msg
    assert "\n" not in msg
    skipped = ckpt.load_into(net, state, "ckpt.pth", partial=True)
    assert set(skipped) == {"extra.w", "1.weight"}
    assert torch.equal(net[0].weight, torch.zeros(4, 3, 1, 1))


class Unsafe:
    """An arbitrary pickled object: weights_only loading must refuse it."""


def test_read_weights_formats_and_errors(tmp_path):
    t = {"a": torch.ones(3)}
    ckpt.save_weights(tmp_path / "w.safetensors", t)
    torch.save({"state_dict": t}, tmp_path / "w.pth")
    assert torch.equal(ckpt.read_weights(tmp_path / "w.safetensors")["a"], t["a"])
    assert torch.equal(ckpt.read_weights(tmp_path / "w.pth")["a"], t["a"])
    (tmp_path / "bad.safetensors").write_bytes(b"not a file")
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        ckpt.read_weights(tmp_path / "bad.safetensors")
    torch.save({"obj": Unsafe()}, tmp_path / "pickle.pth")
    with pytest.raises(CheckpointError, match="weights-only"):
        ckpt.read_weights(tmp_path / "pickle.pth")
    with pytest.raises(CheckpointError, match="no such weights file"):
        ckpt.read_weights(tmp_path / "missing.pth")
