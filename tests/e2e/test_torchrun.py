"""`darkseg` under torchrun (2 CPU processes, gloo): one JSON report with the single-process figures; the hint."""

import csv
import json
import os
import subprocess
import sys

import pytest

TEACHER = "configs/dgkd_wlss/scenes_teacher.yaml"


def torchrun(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "darkseg.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_eval_json_under_torchrun_is_one_report_counting_every_sample_once(tmp_path, tiny, capsys):
    from darkseg.cli import main

    run = tmp_path / "run"
    # the configured inference, as in-training validation uses it (no threshold search on val)
    common = [*tiny, f"output_dir={run}", "train.device=cpu", "eval.inference_search=null"]
    assert main(["train", TEACHER, *common, "train.iterations=2", "train.val_every=0"]) == 0
    in_training = list(csv.DictReader((run / "val_log.csv").open()))[-1]
    evaluated = torchrun("eval", TEACHER, *common, "--split", "val", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)  # exactly one JSON document (two ranks printing would not parse)
    assert report["miou"] == pytest.approx(float(in_training["miou"]), abs=1e-9)
    assert report["pixacc"] == pytest.approx(float(in_training["pixacc"]), abs=1e-9)


def test_continue_hint_keeps_the_torchrun_prefix(monkeypatch):
    from argparse import Namespace

    from darkseg.commands.train import _continue_command

    args = Namespace(config=TEACHER, overrides=["train.iterations=9"])
    assert _continue_command(args) == f"darkseg train {TEACHER} train.iterations=9 --resume"
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert _continue_command(args) == (f"torchrun --nproc_per_node 4 --nnodes 2 -m darkseg.cli train {TEACHER} "
                                       "train.iterations=9 --resume")


def test_dania_trains_under_torchrun_with_its_two_phases(tmp_path):
    """Two optimisers, two domain streams and alternating phases under DDP (gloo): the run finishes on both ranks
    and logs the generator and discriminator losses."""
    from darkseg.cli import main
    from darkseg.data.scenes_daynight import DayNightConfig, ensure

    kw = dict(height=32, width=64, n_train=4, n_val=2, n_night_train=4, n_night_val=2, n_night_test=2, seed=1)
    root = tmp_path / "scenes_daynight"
    ensure(root, DayNightConfig(**kw), progress=False)
    assert main(["align", "scenes_daynight", str(root), "--split", "night_train", "--model", "similarity",
                 "--json"]) == 0
    data = [f"data.root={root}", *(f"data.scenes_daynight.{k}={v}" for k, v in kw.items()),
            f"data.target.root={root}", *(f"data.target.scenes_daynight.{k}={v}" for k, v in kw.items()),
            "data.augment.crop_size=32", "data.target.augment.crop_size=32", "data.batch_size=2",
            "data.num_workers=0"]
    run = tmp_path / "dania"
    done = torchrun("train", "configs/dania/scenes_dania_deeplabv2.yaml", *data, "method.init=null",
                    "model.segmenter.backbone.width=0.0625", "model.relight.width=4", "train.iterations=3",
                    "train.progress=false", "train.val_every=0", "train.ckpt_every=0", "train.device=cpu",
                    f"output_dir={run}")
    assert done.returncode == 0, done.stderr[-2000:]
    rows = list(csv.DictReader((run / "train_log.csv").open()))
    assert int(rows[-1]["iteration"]) == 3 and {"loss/static", "disc/loss/d_night"} <= set(rows[-1])
    assert (run / "model_final.safetensors").is_file()
