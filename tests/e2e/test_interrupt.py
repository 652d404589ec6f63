"""Ctrl-C during `darkseg train` writes a checkpoint and exits 130; `--resume` continues from it."""

import signal
import subprocess
import sys
import time

from darkseg.cli import main
from darkseg.engine.checkpoint import latest_checkpoint


def test_ctrl_c_writes_a_checkpoint_exits_130_then_resume_continues(tmp_path, tiny):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "darkseg.cli", "train", "configs/dgkd_wlss/scenes_teacher.yaml", *tiny,
           f"output_dir={run}", "train.iterations=100000", "train.ckpt_every=0", "train.val_every=0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run / "train_log.csv").is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[1]
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err  # `darkseg train && darkseg eval` must not go on after an interrupt
    assert "interrupted (SIGINT) at iteration" in out and "--resume" in out
    ckpt = latest_checkpoint(run / "checkpoints")
    assert ckpt is not None and ckpt.name.startswith("iter_")
    stopped_at = int(ckpt.name.split("_")[1])
    assert main(["train", *cmd[4:], "--resume", "--stop-at", str(stopped_at + 2)]) == 0
    assert latest_checkpoint(run / "checkpoints").name == f"iter_{stopped_at + 2:07d}"
