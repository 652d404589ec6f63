"""`darkseg reproduce --jobs 2`: runs shared out between two processes give the one-process results, run for run."""

import argparse
import json
from pathlib import Path

import pytest
import torch

from darkseg.cli import main
from darkseg.errors import ConfigError
from darkseg.reproduce import jobs
from darkseg.reproduce.jobs import child_argv, resolve_jobs


def test_auto_jobs_is_one_process_per_seed_up_to_the_cpus_and_one_with_cuda(monkeypatch):
    monkeypatch.setattr(jobs, "available_cpus", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert [resolve_jobs("auto", n) for n in (1, 2, 5)] == [1, 2, 2]
    assert resolve_jobs("3", 5) == 3
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert resolve_jobs("auto", 5) == 1
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_jobs("auto", 5) == 1
    for bad in ("0", "-1", "two"):
        with pytest.raises(ConfigError, match="--jobs"):
            resolve_jobs(bad, 2)


def test_a_job_repeats_the_users_arguments_for_its_seeds():
    args = argparse.Namespace(paper="plda", overrides=["a=1"], suite="scenes", configs=None, data_root="d",
                              eval_data_root=None, split=None, ablation=["table-6", "table-6"], quick=True)
    assert child_argv(args, Path("o"), (1, 3), ["train.threads=1"], Path("o/jobs/claims")) == [
        "reproduce", "plda", "a=1", "train.threads=1", "--suite", "scenes", "--out", "o", "--seeds", "1,3",
        "--jobs", "1", "--runs-only", "--claims", "o/jobs/claims", "--data-root", "d", "--ablation", "table-6",
        "--quick"]


def test_two_processes_reproduce_the_one_process_suite(tmp_path, tiny, capsys):
    common = ["dgkd-wlss", "--suite", "scenes", "--quick", "--seeds", "0,1", *tiny, "train.iterations=2",
              "train.val_every=0"]
    assert main(["reproduce", *common, "--out", str(tmp_path / "one"), "--jobs", "1"]) == 0
    assert main(["reproduce", *common, "--out", str(tmp_path / "two"), "--jobs", "2"]) == 0
    printed = capsys.readouterr().out
    assert "in 2 processes" in printed
    jobs_dir = tmp_path / "two" / "jobs"
    assert sorted(p.name for p in jobs_dir.glob("*.log")) == ["process-1.log", "process-2.log"]
    done = sorted(p.name for p in (jobs_dir / "claims").glob("*.done"))  # every run once, by one of the processes
    assert done == sorted(f"{k}-seed{s}.done" for k in ("teacher", "baseline", "dgkd", "dgkd_dgf2") for s in (0, 1))
    one, two = (json.loads((tmp_path / d / "results.json").read_text())["columns"] for d in ("one", "two"))
    assert set(one) == set(two) == {"teacher", "baseline", "dgkd", "dgkd_dgf2"}
    for key in one:  # train.threads=1 in both: every run is bit-identical
        assert two[key]["miou_per_seed"] == one[key]["miou_per_seed"], key


def test_a_failed_process_stops_the_others_and_is_named(tmp_path, monkeypatch):
    """The others may wait for a run the failed process had claimed: they are interrupted, and the error names the
    failed process's log, not one of the interrupted ones."""
    import signal as signals

    from darkseg.errors import DarksegError

    class Proc:
        def __init__(self, cmd, stdout, stderr):  # noqa: ANN001
            self.failing = not procs
            self.returncode, self.signals = (1 if self.failing else None), []
            procs.append(self)

        def poll(self):  # noqa: ANN202
            return self.returncode

        def send_signal(self, sig):  # noqa: ANN001
            self.signals.append(sig)
            self.returncode = 130

        def wait(self):  # noqa: ANN202
            return self.returncode

    procs: list[Proc] = []
    monkeypatch.setattr(jobs.subprocess, "Popen", Proc)
    args = argparse.Namespace(paper="dgkd-wlss", overrides=[], suite="scenes", configs=None, data_root=None,
                              eval_data_root=None, split=None, ablation=[], quick=True)
    with pytest.raises(DarksegError, match=r"exit 1\).*process-1\.log"):
        jobs.run_jobs(args, tmp_path, (0, 1), 2)
    assert procs[0].signals == [] and procs[1].signals == [signals.SIGINT]
