"""The training loop: resume equivalence, NaN stop, interrupt checkpoint, logs, export."""

import csv

import pytest
import torch
from toy import ToyDataset, ToyMethod, toy_validator

from darkseg.data.loader import train_stream
from darkseg.engine import checkpoint as ckpt
from darkseg.engine.config import TrainConfig
from darkseg.engine.distributed import DistEnv
from darkseg.engine.trainer import NonFiniteLossError, Trainer
from darkseg.errors import ConfigError, DataError


def make_trainer(run_dir, iterations=12, workers=0, nan_at=None, blow_up_at=None, data=None, val_data=None,
                 on_error="raise", batch_size=5, method_cls=None, **train):
    torch.manual_seed(0)
    method = (method_cls or ToyMethod)(nan_at=nan_at, blow_up_at=blow_up_at)
    train = {"ckpt_every": 4, **train}
    cfg = TrainConfig(iterations=iterations, log_every=2, keep_last=2, progress=False,
                      optim={"lr": 0.05, "momentum": 0.9}, schedule={"name": "poly", "warmup_iters": 2}, **train)
    data = data or ToyDataset()

    def batches(start):
        return train_stream(data, batch_size, seed=3, start_iteration=start, num_workers=workers, on_error=on_error)

    validate = toy_validator(val_data) if val_data is not None else None
    return Trainer(method, cfg, run_dir, torch.device("cpu"), DistEnv(), batches, batch_size=batch_size,
                   validate=validate)


def final_weights(trainer):
    return {k: v.clone() for k, v in trainer.method.nets["model"].state_dict().items()}


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_reaches_the_same_weights(tmp_path, workers):
    full = make_trainer(tmp_path / "full", workers=workers)
    full.fit()
    part = make_trainer(tmp_path / "part", workers=workers)
    res = part.fit(stop_at=7)  # not a multiple of ckpt_every: the stop writes its own checkpoint
    assert not res.completed and res.iteration == 7
    resumed = make_trainer(tmp_path / "part", workers=workers)
    resumed.fit(resume=True)
    a, b = final_weights(full), final_weights(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert (tmp_path / "part" / "model_final.safetensors").is_file()
    rows = list(csv.DictReader((tmp_path / "part" / "train_log.csv").open()))
    assert [int(r["iteration"]) for r in rows] == [2, 4, 6, 7, 8, 10, 12]


def test_same_seed_same_result(tmp_path):
    a = make_trainer(tmp_path / "a", iterations=5)
    a.fit()
    b = make_trainer(tmp_path / "b", iterations=5)
    b.fit()
    for k, v in final_weights(a).items():
        assert torch.equal(v, final_weights(b)[k])


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    trainer = make_trainer(tmp_path, nan_at=9)  # the 10th iteration (0-based 9) computes a NaN loss
    with pytest.raises(NonFiniteLossError, match=r"'bce' is nan at iteration 10.*iter_0000008"):
        trainer.fit()
    last = ckpt.latest_checkpoint(tmp_path / "checkpoints")
    weights, _, _ = ckpt.load_checkpoint(last)
    assert all(torch.isfinite(v).all() for v in weights.values())


def test_non_finite_weights_are_never_checkpointed_and_resume_takes_an_older_checkpoint(tmp_path):
    """Weights that became Inf with a finite loss are not 'good': no checkpoint of them, the message names iter 4."""
    trainer = make_trainer(tmp_path, blow_up_at=7)
    with pytest.raises(NonFiniteLossError, match=r"hold NaN/Inf after iteration 8.*--resume \S*iter_0000004 continues"):
        trainer.fit()
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("iter_*")) == ["iter_0000004"]
    # A damaged later checkpoint (e.g. written by an older darkseg) is skipped by a plain --resume ...
    weights, state, meta = ckpt.load_checkpoint(tmp_path / "checkpoints" / "iter_0000004")
    weights["model.fc.bias"] = torch.full_like(weights["model.fc.bias"], float("inf"))
    ckpt.save_checkpoint(tmp_path / "checkpoints", "iter_0000008", weights, {**state, "iteration": 8},
                         {**meta, "iteration": 8})
    resumed = make_trainer(tmp_path, iterations=5)
    assert resumed.resume().name == "iter_0000004" and resumed.iteration == 4
    # ... and --resume CHECKPOINT continues from the named one, moving the newer ones aside.
    explicit = make_trainer(tmp_path, iterations=6, ckpt_every=0)
    explicit.fit(resume=tmp_path / "checkpoints" / "iter_0000004")
    assert (tmp_path / "checkpoints" / "superseded" / "iter_0000008").is_dir()
    assert (tmp_path / "model_final.safetensors").is_file()


def test_batch_size_one_with_batchnorm_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="data.batch_size: 1"):
        make_trainer(tmp_path, batch_size=1)


def test_skipped_samples_leaving_one_sample_skip_the_iteration(tmp_path, caplog):
    """data.on_error=skip with batches of 2: a bad sample leaves 1, which BatchNorm cannot train on."""
    data = ToyDataset(bad={0, 1, 2})
    trainer = make_trainer(tmp_path, iterations=12, data=data, on_error="skip", batch_size=2, ckpt_every=0)
    res = trainer.fit()
    assert res.completed and len(trainer.skipped) > 0
    assert "not trained: fewer than 2 readable samples" in caplog.text


def test_validation_failure_keeps_the_iterations_checkpoint(tmp_path):
    val = ToyDataset(n=4, bad={3})
    trainer = make_trainer(tmp_path, val_data=val, val_every=4, ckpt_every=4)
    with pytest.raises(DataError, match="sample 3"):
        trainer.fit()
    assert ckpt.latest_checkpoint(tmp_path / "checkpoints").name == "iter_0000004"
    val.bad.clear()  # the user repairs the mask; the run continues where it was, validating iteration 4 first
    resumed = make_trainer(tmp_path, val_data=val, val_every=4, ckpt_every=4)
    resumed.fit(resume=True)
    rows = list(csv.DictReader((tmp_path / "val_log.csv").open()))
    assert [int(r["iteration"]) for r in rows] == [4, 8, 12]


class _DropoutToy(ToyMethod):
    """A toy whose training step draws from the global random state (dropout on its input), as students do."""

    def training_step(self, phase, batch, iteration, ctx):
        batch = {**batch, "image": torch.nn.functional.dropout(batch["image"], 0.5, training=True)}
        return super().training_step(phase, batch, iteration, ctx)


def test_validation_never_changes_the_final_weights(tmp_path):
    """``train.val_every`` is not part of a run's identity (``config_diff``): validating, even with a validator that
    draws random numbers, leaves the training's random draws and so ``model_final`` as they were."""
    val = ToyDataset(n=4)

    def fit(run_dir, val_every):
        trainer = make_trainer(run_dir, val_data=val, val_every=val_every, method_cls=_DropoutToy)
        validate = trainer.validate
        trainer.validate = lambda model: (torch.rand(100), validate(model))[1]
        trainer.fit()
        return final_weights(trainer)

    rare, often = fit(tmp_path / "rare", 0), fit(tmp_path / "often", 3)
    assert all(torch.equal(rare[k], often[k]) for k in rare)
    rows = list(csv.DictReader((tmp_path / "often" / "val_log.csv").open()))
    assert [int(r["iteration"]) for r in rows] == [3, 6, 9, 12]


def test_resuming_a_finished_run_changes_nothing(tmp_path):
    val = ToyDataset(n=4)
    first = make_trainer(tmp_path, val_data=val, val_every=4).fit()
    files = ("val_log.csv", "train_log.csv", "model_final.safetensors", "model_best.safetensors")
    before = {f: (tmp_path / f).read_bytes() for f in files}
    again = make_trainer(tmp_path, val_data=val, val_every=4)
    res = again.fit(resume=True)
    assert res.completed and res.best == first.best
    for f in files:
        assert (tmp_path / f).read_bytes() == before[f], f


def test_interrupt_writes_checkpoint(tmp_path):
    trainer = make_trainer(tmp_path)
    original = trainer._step

    def step(batch, ctx):
        out = original(batch, ctx)
        if trainer.iteration == 2:  # Ctrl-C during iteration 3 (0-based 2)
            trainer.request_stop()
        return out

    trainer._step = step
    res = trainer.fit()
    assert res.iteration == 3 and not res.completed
    assert ckpt.latest_checkpoint(tmp_path / "checkpoints").name == "iter_0000003"


def test_grad_clip_and_bf16_autocast_run(tmp_path):
    trainer = make_trainer(tmp_path, iterations=3, grad_clip=0.1, amp="bf16")
    res = trainer.fit()
    assert res.completed
    rows = list(csv.DictReader((tmp_path / "train_log.csv").open()))
    assert float(rows[-1]["grad_norm"]) >= 0


def test_several_optimisers_stepped_in_phases(tmp_path):
    from toy import TwoPhaseMethod

    torch.manual_seed(0)
    method = TwoPhaseMethod()
    before = {n: [p.clone() for p in method.nets[n].parameters()] for n in ("gen", "disc")}
    cfg = TrainConfig(iterations=3, log_every=1, ckpt_every=0, progress=False, optim={"lr": 0.1},
                      extra_optim={"gen": {"lr": 0.1}, "disc": {"name": "adamw", "lr": 0.01}})
    data = ToyDataset()
    trainer = Trainer(method, cfg, tmp_path, torch.device("cpu"), DistEnv(),
                      lambda start: train_stream(data, 4, 0, start, 0, "raise"), batch_size=4)
    assert isinstance(trainer.optimizers["disc"], torch.optim.AdamW)
    trainer.fit()
    assert method.calls == ["gen", "disc"] * 3
    for n in ("gen", "disc"):
        assert any(not torch.equal(a, b) for a, b in zip(before[n], method.nets[n].parameters())), n
    rows = list(csv.DictReader((tmp_path / "train_log.csv").open()))
    assert {"gen/loss/adv", "disc/loss/d", "disc/lr"} <= rows[0].keys()
