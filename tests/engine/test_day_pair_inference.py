"""Test-time class re-weighting and day-night-pair inference (DANIA Table 9): against a direct per-pixel computation,
and `darkseg eval` with a paired day image scoring every image of the split (pairs without alignment included)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from darkseg.cli import main
from darkseg.config import load_config
from darkseg.data.registry import build_dataset
from darkseg.data.scenes_daynight import DayNightConfig, ensure
from darkseg.engine.config import InferenceConfig
from darkseg.engine.inference import labels_from_probs
from darkseg.methods.static_loss import FusionConfig, class_weights, day_pair_labels

TINY_KW = dict(height=32, width=64, n_train=4, n_val=2, n_night_train=4, n_night_val=2, n_night_test=3, seed=1)


def test_reweighting_multiplies_the_probabilities_by_eq2_weights():
    freq = [0.6, 0.3, 0.1]
    probs = torch.tensor([0.40, 0.35, 0.25]).view(1, 3, 1, 1)
    plain = InferenceConfig(class_filter="none")
    assert labels_from_probs(probs, None, plain).item() == 0
    cfg = InferenceConfig(class_filter="none", reweight={"frequencies": freq, "std": 0.5})
    w = class_weights(freq, 0.5).numpy()
    expected = int(np.argmax(np.array([0.40, 0.35, 0.25]) * w))
    assert labels_from_probs(probs, None, cfg).item() == expected == 2  # the rare class wins after re-weighting


def _direct(night, day, flow, static, fusion):
    """Per pixel: bilinear sample of the day probabilities at p + flow, fusion, static-class rule, night fallback."""
    c, h, w = night.shape
    out = np.zeros((h, w), int)
    for y in range(h):
        for x in range(w):
            n = night[:, y, x]
            u, v = flow[:, y, x]
            sx, sy = x + u, y + v
            if not (np.isfinite(u) and np.isfinite(v) and 0 <= sx <= w - 1 and 0 <= sy <= h - 1):
                out[y, x] = n.argmax()
                continue
            x0, y0 = int(np.floor(sx)), int(np.floor(sy))
            x1, y1 = min(x0 + 1, w - 1), min(y0 + 1, h - 1)
            ax, ay = sx - x0, sy - y0
            d = ((1 - ax) * (1 - ay) * day[:, y0, x0] + ax * (1 - ay) * day[:, y0, x1]
                 + (1 - ax) * ay * day[:, y1, x0] + ax * ay * day[:, y1, x1])
            h_ = np.where(d > fusion.threshold, fusion.high, fusion.low)
            f = h_ * d + (1 - h_) * n
            out[y, x] = f.argmax() if f.argmax() in static else n.argmax()
    return out


def test_day_pair_labels_against_a_direct_loop():
    g = torch.Generator().manual_seed(0)
    night = torch.rand(1, 4, 6, 7, generator=g, dtype=torch.float64).softmax(1)
    day = (3 * torch.rand(1, 4, 6, 7, generator=g, dtype=torch.float64)).softmax(1)
    flow = torch.rand(1, 2, 6, 7, generator=g, dtype=torch.float64) * 2 - 0.5
    flow[0, :, 0, 0] = float("nan")
    fusion = FusionConfig()
    got = day_pair_labels(night, day, flow, [0, 1], fusion)[0].numpy()
    ref = _direct(night[0].numpy(), day[0].numpy(), flow[0].numpy(), {0, 1}, fusion)
    assert (got == ref).all()
    assert (got != night.argmax(1)[0].numpy()).any()  # the day image changed some labels


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pair")
    root = tmp / "scenes_daynight"
    ensure(root, DayNightConfig(**TINY_KW), progress=False)
    common = [f"data.root={root}", *(f"data.scenes_daynight.{k}={v}" for k, v in TINY_KW.items()),
              "data.augment.crop_size=32", "data.batch_size=2", "data.num_workers=0", "train.progress=false",
              "train.threads=1", "train.val_every=0", "train.ckpt_every=0", "eval.inference.batch_size=2",
              "model.backbone.width=0.0625", "model.backbone.pretrained=null", f"output_dir={tmp / 'run'}"]
    assert main(["train", "configs/daynight/scenes_source_only_deeplabv2.yaml", *common, "train.iterations=2"]) == 0
    return root, common


def test_eval_with_day_pairs_scores_every_image(trained, capsys):
    root, common = trained
    pair = ["eval.inference.day_pair.enabled=true"]
    assert main(["eval", "configs/daynight/scenes_source_only_deeplabv2.yaml", *common, *pair, "--json"]) != 0
    assert "run 'darkseg align'" in capsys.readouterr().err  # no flows for night_test yet: one clear line
    assert main(["align", "scenes_daynight", str(root), "--split", "night_test", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(["eval", "configs/daynight/scenes_source_only_deeplabv2.yaml", *common, "--json"]) == 0
    night_only = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(["eval", "configs/daynight/scenes_source_only_deeplabv2.yaml", *common, *pair, "--json"]) == 0
    paired = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["pairs"] == 3 and paired["split"] == night_only["split"] == "night_test"
    assert paired["miou"] != night_only["miou"] or report["aligned"] == 0
    # every image is scored: pairs whose alignment failed stay, with a flow that has no correspondence
    cfg = load_config("configs/daynight/scenes_source_only_deeplabv2.yaml", common)
    data = cfg.data.model_copy(update={"align_failed": "keep"})
    kept = build_dataset(data, "night_test", ("image", "day", "flow"))
    assert len(kept) == 3
    failed = [i for i in range(3) if not np.isfinite(kept[i]["flow"]).any()]
    assert len(failed) == report["failed"]
