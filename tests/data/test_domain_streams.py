"""Zipped source/target training streams: keys, independent cycling, resume exactness; the flow view under the
paired transform (resize, flip, crop keep night pixel -> day pixel correspondences)."""

from pathlib import Path

import numpy as np
import torch

from darkseg.align.warp import warp_by_flow
from darkseg.data.listed import Entry, ListedDataset
from darkseg.data.loader import domain_streams
from darkseg.data.transforms import AugmentConfig, PairedTransform, _flip_flow, _resize


class _Ids(torch.utils.data.Dataset):
    def __init__(self, n: int, tag: str) -> None:
        self.n, self.tag = n, tag

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, item):
        index, seed = item
        return {"x": torch.tensor([index, seed % 1000])}


def _take(start: int, n: int) -> list[dict]:
    stream = domain_streams({"source": _Ids(5, "s"), "target": _Ids(3, "t")}, 2, seed=7, start_iteration=start,
                            num_workers=0, on_error="raise")
    return [next(stream) for _ in range(n)]


def test_resumed_zipped_stream_continues_exactly():
    full = _take(0, 6)
    assert set(full[0]) == {"source/x", "target/x"}
    resumed = _take(4, 2)
    for a, b in zip(full[4:], resumed):
        assert torch.equal(a["source/x"], b["source/x"]) and torch.equal(a["target/x"], b["target/x"])
    # each domain cycles through its own permutation: 3 target samples per epoch, 5 source ones
    assert sorted(torch.cat([b["target/x"][:, 0] for b in full[:3]])[:3].tolist()) == [0, 1, 2]
    assert not torch.equal(full[0]["source/x"][:, 1], full[0]["target/x"][:, 1])  # different seeds per domain


def _pattern(h: int, w: int) -> np.ndarray:
    ys, xs = np.mgrid[:h, :w]
    return np.stack([xs * 255 // (w - 1), ys * 255 // (h - 1), (xs + ys) % 256], -1).astype(np.uint8)


def test_flow_follows_resize_flip_and_crop():
    h, w, shift = 40, 60, 3.0
    day = _pattern(h, w)
    night = np.roll(day, shift=int(shift), axis=1)  # night pixel x shows day pixel x - 3
    flow = np.zeros((h, w, 2), np.float32)
    flow[..., 0] = -shift
    sample = {"id": "p", "image": night, "day": day, "flow": flow}
    transform = PairedTransform(AugmentConfig(crop_size=32, scale_mode="relative", scale_range=(0.7, 1.3)),
                                (0.5, 0.5, 0.5), (0.2, 0.2, 0.2))
    for seed in range(6):
        out = transform(sample, np.random.default_rng(seed))
        warped, valid = warp_by_flow(out["day"][None], out["flow"][None])
        inside = valid[0] & (out["image"][0] != 0.5)  # not padding
        inside[:, :4] = inside[:, -4:] = False  # the rolled-in columns have no true correspondence
        assert inside.sum() > 100
        err = (warped[0] - out["image"])[:, inside].abs().mean()
        assert err < 0.02, (seed, float(err))
    resized = _resize({"flow": flow}, (20, 30), 1)["flow"]
    assert np.allclose(resized[..., 0], -1.5) and np.allclose(_flip_flow(flow)[..., 0], 3.0)


def test_flow_view_excludes_failed_pairs(tmp_path: Path, caplog):
    from PIL import Image

    from darkseg.align.cache import AlignmentCache

    entries = []
    for k in range(3):
        for side in ("night", "day"):
            Image.fromarray(_pattern(8, 8)).save(tmp_path / f"{side}{k}.png")
        entries.append(Entry(f"p{k}", tmp_path / f"night{k}.png", None, tmp_path / f"day{k}.png"))
    cache = AlignmentCache(tmp_path / "align")
    zero = np.zeros((4, 4, 2), np.float32)
    for k in (0, 2):
        cache.write_pair(f"p{k}", np.eye(3), zero + k, zero, 0.5)
    cache.write_report({"config": {}, "pairs": {"p0": {"status": "ok"}, "p1": {"status": "failed", "reason": "x"},
                                                "p2": {"status": "ok"}}})
    ds = ListedDataset("pairs", entries, ("a", "b"), ("image", "day", "flow"), align_dir=tmp_path / "align")
    assert ds.ids == ["p0", "p2"] and "1 of 3 pairs excluded" in caplog.text
    flow = ds.load(1)["flow"]
    assert flow.shape == (8, 8, 2) and np.allclose(flow, 4.0)  # 2 px at half resolution
