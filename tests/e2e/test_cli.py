"""The CLI as a user drives it, on the tiny benchmark: train, eval, infer, cam, profile, bad input."""

import csv
import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from darkseg.cli import main
from darkseg.config import load_config
from darkseg.engine.runner import load_deployed

TEACHER = "configs/dgkd_wlss/scenes_teacher.yaml"


def test_help_lists_the_subcommands(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("train", "eval", "infer", "profile", "cam", "synth", "depth", "data", "reproduce"):
        assert cmd in out


def test_invalid_override_is_one_line_without_traceback():
    proc = subprocess.run([sys.executable, "-m", "darkseg.cli", "train", TEACHER, "no.such.key=1"],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no" in lines[0] and "allowed keys" in lines[0]
    assert "Traceback" not in proc.stderr


def test_train_eval_infer_cam_profile(tmp_path, tiny, tiny_scenes, capsys):
    run = tmp_path / "teacher"
    assert main(["train", TEACHER, *tiny, f"output_dir={run}"]) == 0
    for f in ("config.yaml", "model_final.safetensors", "model_best.safetensors", "train_log.csv", "val_log.csv"):
        assert (run / f).is_file(), f
    capsys.readouterr()
    assert main(["eval", TEACHER, *tiny, f"output_dir={run}", "--split", "test", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert {"miou", "pixacc", "mean_acc", "per_class_iou"} <= metrics.keys() and metrics["split"] == "test"
    assert len(metrics["per_class_iou"]) == 9
    out = tmp_path / "pred"
    assert main(["infer", TEACHER, *tiny, f"output_dir={run}", "-i", str(tiny_scenes / "JPEGImages"),
                 "-o", str(out)]) == 0
    n_images = len(list((tiny_scenes / "JPEGImages").iterdir()))
    assert len(list(out.glob("*_overlay.jpg"))) == n_images and len(list(out.glob("*.png"))) == n_images
    capsys.readouterr()
    assert main(["cam", TEACHER, *tiny, f"output_dir={run}", "--split", "val", "--thresholds", "0.1:0.5:0.2",
                 "--json"]) == 0
    sweep = json.loads(capsys.readouterr().out)
    assert list(sweep["miou_per_threshold"]) == ["0.10", "0.30", "0.50"]
    assert main(["profile", TEACHER, "--size", "48", *tiny, "--json"]) == 0
    prof = json.loads(capsys.readouterr().out)
    assert set(prof) == {"params", "gmac", "deploy_params", "deploy_gmac"} and prof["params"] == prof["deploy_params"]


def test_dgkd_dgf2_exports_only_the_deployed_student(tmp_path, tiny, capsys):
    teacher = tmp_path / "teacher"
    assert main(["train", TEACHER, *tiny, f"output_dir={teacher}"]) == 0
    student = tmp_path / "dgkd"
    assert main(["train", "configs/dgkd_wlss/scenes_dgkd_dgf2.yaml", *tiny, f"output_dir={student}",
                 f"method.teacher.weights={teacher / 'model_final.safetensors'}"]) == 0
    exported = load_file(student / "model_final.safetensors")
    assert any(k.startswith("prior_net.") for k in exported)  # DGF2 is part of the deployed student
    assert not any("refiner" in k or "denoiser" in k or "autoencoder" in k for k in exported)
    capsys.readouterr()
    assert main(["profile", "configs/dgkd_wlss/scenes_dgkd_dgf2.yaml", "--size", "48", *tiny, "--json"]) == 0
    prof = json.loads(capsys.readouterr().out)
    assert prof["params"] > prof["deploy_params"] and prof["gmac"] > prof["deploy_gmac"]
    cfg = load_config("configs/dgkd_wlss/scenes_dgkd_dgf2.yaml", [*tiny, f"output_dir={student}"])
    deployed = load_deployed(cfg, None, torch.device("cpu"))  # strict: the export holds exactly the student
    assert prof["deploy_params"] == sum(p.numel() for p in deployed.parameters())


def test_missing_teacher_and_bad_checkpoint_are_clear(tmp_path, tiny, capsys):
    rc = main(["train", "configs/dgkd_wlss/scenes_dgkd.yaml", *tiny, f"output_dir={tmp_path}",
               f"method.teacher.weights={tmp_path / 'nope.safetensors'}"])
    err = capsys.readouterr().err
    assert rc == 1 and "nope.safetensors" in err and len(err.strip().splitlines()) == 1
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    rc = main(["eval", TEACHER, *tiny, "--weights", str(bad)])
    err = capsys.readouterr().err
    assert rc == 1 and "bad.safetensors" in err and len(err.strip().splitlines()) == 1


def test_dgkd_resume_reaches_the_same_student(tmp_path, tiny):
    """A DGKD run stopped and resumed ends with the weights of an uninterrupted run (denoising noise included)."""
    teacher = tmp_path / "teacher"
    assert main(["train", TEACHER, *tiny, f"output_dir={teacher}", "train.iterations=1", "train.val_every=0"]) == 0
    args = [*tiny, f"method.teacher.weights={teacher / 'model_final.safetensors'}", "train.iterations=4",
            "train.val_every=0", "train.ckpt_every=0"]
    assert main(["train", "configs/dgkd_wlss/scenes_dgkd.yaml", *args, f"output_dir={tmp_path / 'full'}"]) == 0
    part = [*args, f"output_dir={tmp_path / 'part'}"]
    assert main(["train", "configs/dgkd_wlss/scenes_dgkd.yaml", *part, "--stop-at", "2"]) == 0
    assert not (tmp_path / "part" / "model_final.safetensors").exists()
    assert main(["train", "configs/dgkd_wlss/scenes_dgkd.yaml", *part, "--resume"]) == 0
    full, resumed = (load_file(tmp_path / r / "model_final.safetensors") for r in ("full", "part"))
    assert full.keys() == resumed.keys()
    for k in full:
        assert torch.equal(full[k], resumed[k]), k


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny):
    """A finished tiny teacher run."""
    run = tmp_path_factory.mktemp("trained") / "run"
    assert main(["train", TEACHER, *tiny, f"output_dir={run}"]) == 0
    return run


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_existing_run_is_never_overwritten_and_resume_refuses_a_changed_config(tmp_path, tiny, capsys):
    run = tmp_path / "run"
    args = ["train", TEACHER, *tiny, f"output_dir={run}"]
    assert main(args) == 0
    before = snapshot(run)
    capsys.readouterr()
    assert main(args) == 1  # the README's own command, run twice
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--resume" in err[0] and "--overwrite" in err[0]
    assert main([*args, "train.optim.lr=0.5", "--resume"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train.optim.lr" in err[0] and "changed config" in err[0]
    assert snapshot(run) == before
    # Resuming the finished run with a key that is safe to change adds nothing and rewrites nothing.
    assert main([*args, "train.threads=2", "--resume"]) == 0
    after = snapshot(run)
    assert {k: v for k, v in after.items() if k.parts[0] != "tensorboard"} == \
        {k: v for k, v in before.items() if k.parts[0] != "tensorboard"}
    # --overwrite deletes the run files and only them.
    (run / "notes.txt").write_text("mine")
    assert main([*args, "--overwrite"]) == 0
    assert (run / "notes.txt").read_text() == "mine"
    assert len(list(csv.DictReader((run / "val_log.csv").open()))) == 2


def test_override_errors_name_the_override_and_partial_eval_data_inherits(capsys):
    assert main(["train", TEACHER, "train.iterations=-1"]) == 1
    assert capsys.readouterr().err.startswith("darkseg train: error: override 'train.iterations=-1': ")
    cfg = load_config(TEACHER, ["data.root=somewhere", "eval.data.mask_dir=SegmentationClass"])
    assert cfg.eval.data.dataset == cfg.data.dataset and cfg.eval.data.root == "somewhere"
    assert cfg.eval.data.mask_dir == "SegmentationClass"
    other = load_config(TEACHER, ["data.root=somewhere", "eval.data.dataset=lis"])
    assert other.eval.data.root != "somewhere"  # another dataset inherits nothing


def test_infer_never_writes_into_its_input_and_keeps_relative_paths(tmp_path, tiny, trained, capsys):
    images = tmp_path / "images"
    from PIL import Image

    for sub in ("a", "b"):
        (images / sub).mkdir(parents=True)
        Image.new("RGB", (48, 40), (10, 200, 30)).save(images / sub / "x.png")
    (images / "c").mkdir()
    (images / "c" / "broken.jpg").write_bytes(b"not a jpeg")
    before = snapshot(images)
    run_args = ["infer", TEACHER, *tiny, f"output_dir={trained}", "-i", str(images)]
    for out in (images, images / "pred"):
        capsys.readouterr()
        assert main([*run_args, "-o", str(out)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "inside the input folder" in err[0]
        assert snapshot(images) == before and not (images / "pred").exists()
    single = images / "a" / "x.png"
    assert main(["infer", TEACHER, *tiny, f"output_dir={trained}", "-i", str(single), "-o", str(images / "a")]) == 1
    assert snapshot(images) == before
    out = tmp_path / "pred"
    assert main([*run_args, "-o", str(out)]) == 1  # one unreadable image: the others are written, then exit 1
    captured = capsys.readouterr()
    assert "broken.jpg" in captured.err and "wrote 2 masks" in captured.out
    assert (out / "a" / "x.png").is_file() and (out / "b" / "x.png").is_file()
    assert (out / "a" / "x_overlay.jpg").is_file() and (out / "b" / "x_overlay.jpg").is_file()


def test_eval_json_is_strict_json(trained, tiny, capsys):
    from darkseg.commands.eval import json_safe

    assert json_safe({"iou": {"car": float("nan"), "bg": 1.5}, "x": [float("inf")]}) == \
        {"iou": {"car": None, "bg": 1.5}, "x": [None]}
    capsys.readouterr()
    assert main(["eval", TEACHER, *tiny, f"output_dir={trained}", "--split", "val", "--json"]) == 0

    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    json.loads(capsys.readouterr().out, parse_constant=refuse)
