"""Two stages from the CLI on a tiny scenes benchmark: a weakly supervised model → `darkseg pseudo` (resumable,
scored against the train ground truth) → `supervised` training on the pseudo-mask folder → `darkseg eval`;
bad pseudo-mask folders fail in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from darkseg.cli import main
from darkseg.data.io import read_mask, write_palette_png
from darkseg.data.scenes import ScenesConfig, generate_scenes

SCENES = dict(size=48, n_train=12, n_val=4, n_test=4, n_pairs_train=2, n_pairs_val=2, workers=1)
TEACHER = "configs/dgkd_wlss/scenes_teacher.yaml"
STUDENT = "configs/segmenters/scenes_pspnet.yaml"
RUN = ["data.augment.crop_size=48", "data.batch_size=4", "data.num_workers=0", "model.backbone.width=0.0625", "model.backbone.pretrained=null",
       "train.iterations=2", "train.val_every=2", "train.ckpt_every=2", "train.progress=false", "train.threads=1",
       "train.amp=off", "eval.inference.batch_size=4"]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    root = tmp_path_factory.mktemp("scenes")
    generate_scenes(root, ScenesConfig(**SCENES), progress=False)
    return [f"data.root={root}", *(f"data.scenes.{k}={v}" for k, v in SCENES.items()), *RUN]


@pytest.fixture(scope="module")
def teacher(scenes: list[str], tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """A trained tiny weakly supervised model: its config arguments."""
    args = [TEACHER, *scenes, "model.aspp_channels=8", "model.decoder_channels=8", "model.skip_channels=8",
            f"output_dir={tmp_path_factory.mktemp('teacher')}"]
    assert main(["train", *args]) == 0
    return args


def test_pseudo_then_supervised_then_eval(tmp_path: Path, scenes: list[str], teacher: list[str],
                                          capsys: pytest.CaptureFixture) -> None:
    pseudo = tmp_path / "pseudo"
    args = ["pseudo", *teacher, "--split", "train", "--out", str(pseudo)]
    capsys.readouterr()
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "(12 written, 0 kept)" in out and "pseudo-mask mIoU against the train ground truth" in out
    masks = sorted(pseudo.glob("*.png"))
    assert len(masks) == 12
    gt = Path(scenes[0].split("=", 1)[1]) / "SegmentationClassAug"
    for m in masks:  # the image-label filter: only classes of the image (or background) appear
        present = set(np.unique(read_mask(gt / m.name)).tolist()) | {0}
        assert set(np.unique(read_mask(m)).tolist()) <= present, m.name
    first = read_mask(masks[0])
    masks[0].unlink()
    (pseudo / ".x.png.123.tmp").write_bytes(b"partial")  # a killed run's temporary
    assert main(args) == 0  # resumes: only the missing mask is computed, the same as before
    assert "(1 written, 11 kept)" in capsys.readouterr().out
    assert np.array_equal(read_mask(masks[0]), first) and not list(pseudo.glob(".*.tmp"))

    crf = tmp_path / "pseudo_crf"
    assert main(["pseudo", *teacher, "--split", "train", "--out", str(crf), "--crf"]) == 0
    assert "(12 written, 0 kept)" in capsys.readouterr().out and len(list(crf.glob("*.png"))) == 12

    student = tmp_path / "student"
    assert main(["train", STUDENT, *scenes, f"data.train_mask_dir={pseudo}", f"output_dir={student}"]) == 0
    assert (student / "model_final.safetensors").is_file()
    capsys.readouterr()
    assert main(["eval", STUDENT, *scenes, f"output_dir={student}", "--split", "test", "--json"]) == 0
    assert 0.0 <= json.loads(capsys.readouterr().out)["miou"] <= 100.0


def test_bad_pseudo_mask_folders_fail_in_one_line(tmp_path: Path, scenes: list[str],
                                                  capsys: pytest.CaptureFixture) -> None:
    pseudo = tmp_path / "pseudo"
    ids = (Path(scenes[0].split("=", 1)[1]) / "ImageSets/Segmentation/train.txt").read_text().split()
    for sid in ids[1:]:  # the first id is missing
        write_palette_png(pseudo / f"{sid}.png", np.zeros((48, 48), np.uint8))

    def train_stderr(run: str) -> str:
        capsys.readouterr()
        assert main(["train", STUDENT, *scenes, f"data.train_mask_dir={pseudo}", f"output_dir={tmp_path / run}"]) != 0
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in lines[0]
        return lines[0]

    line = train_stderr("a")  # checked before training starts, with how many are missing
    assert f"{pseudo / ids[0]}.png" in line and f"no mask for 1 of {len(ids)} train images" in line
    write_palette_png(pseudo / f"{ids[0]}.png", np.full((48, 48), 40, np.uint8))  # class id 40 of 9 classes
    assert f"{pseudo / ids[0]}.png: mask values 40 outside 0..8" in train_stderr("b")


def test_weights_that_do_not_fit_print_at_most_two_lines(tmp_path: Path, scenes: list[str],
                                                         capsys: pytest.CaptureFixture) -> None:
    weights = {"conv1.weight": torch.zeros(4, 3, 3, 3), "other.weight": torch.zeros(2)}
    save_file(weights, str(tmp_path / "w.safetensors"))
    capsys.readouterr()
    assert main(["eval", STUDENT, *scenes, "--weights", str(tmp_path / "w.safetensors"), "--split", "test"]) != 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert 1 <= len(lines) <= 2 and "w.safetensors" in lines[-1]
    report = Path(lines[-1].split("key list in ", 1)[1].split(")", 1)[0].split(";", 1)[0])
    assert "unexpected: other.weight" in report.read_text()


def test_pseudo_refuses_the_ground_truth_folder(scenes: list[str], teacher: list[str],
                                                capsys: pytest.CaptureFixture) -> None:
    gt = Path(scenes[0].split("=", 1)[1]) / "SegmentationClassAug"
    before = {p: p.read_bytes() for p in gt.iterdir()}
    capsys.readouterr()
    assert main(["pseudo", *teacher, "--split", "train", "--out", str(gt)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is the dataset's mask folder" in err[0]
    assert {p: p.read_bytes() for p in gt.iterdir()} == before
