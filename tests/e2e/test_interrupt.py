"""Ctrl-C during `darkseg train` writes a checkpoint and exits cleanly; `--resume` continues from it."""

import signal
import subprocess
import sys
import time

from darkseg.engine.checkpoint import latest_checkpoint


def test_ctrl_c_writes_a_checkpoint_then_resume_finishes(tmp_path, tiny):
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
    assert proc.returncode == 0, err
    assert "stopped at iteration" in out and "--resume" in out
    ckpt = latest_checkpoint(run / "checkpoints")
    assert ckpt is not None and ckpt.name.startswith("iter_")
    stopped_at = int(ckpt.name.split("_")[1])
    resumed = subprocess.run([*cmd[:-3], "train.iterations=" + str(stopped_at + 2), "train.ckpt_every=0",
                              "train.val_every=0", "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert (run / "model_final.safetensors").is_file()
