"""A tiny method and dataset exercising the engine without the real models (shared by the engine tests)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from darkseg.errors import DataError
from darkseg.methods.base import DatasetInfo, Method, StepOutput
from darkseg.metrics import ConfusionMatrix, SegMetrics


class ToyDataset(Dataset):
    """Random images whose augmentation depends on the sample seed (like the real paired transforms)."""

    def __init__(self, n: int = 23, size: int = 8, bad: set[int] | None = None) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.rand(n, 3, size, size, generator=g)
        self.y = (self.x.mean((1, 2, 3)) > 0.5).float()[:, None]
        self.bad = set(bad or ())  # indices that fail to load, like a truncated image (a test may "repair" them)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, item):
        i, seed = item if isinstance(item, tuple) else (item, item)
        if i in self.bad:
            raise DataError(f"sample {i}: unreadable or truncated image; replace the file")
        rng = np.random.default_rng(seed)
        x = self.x[i].flip(-1) if rng.random() < 0.5 else self.x[i]
        x = x + 0.05 * torch.from_numpy(rng.standard_normal(x.shape).astype(np.float32))
        return {"id": str(i), "image": x, "labels": self.y[i]}


class ToyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.bn_pooled = nn.BatchNorm1d(4)  # like ASPP's image-pooling branch: a batch of 1 fails in training
        self.drop = nn.Dropout(0.3)
        self.fc = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.bn_pooled(torch.relu(self.bn(self.conv(x))).mean((2, 3)))
        return self.fc(self.drop(h))


class ToyMethod(Method):
    name = "toy"
    deploy_net = "model"

    def __init__(self, nan_at: int | None = None, blow_up_at: int | None = None, pad: int = 0) -> None:
        super().__init__(cfg=None, info=DatasetInfo(("bg", "fg"), (0.5,) * 3, (0.25,) * 3))
        self.nets["model"] = ToyNet()
        if pad:  # a large constant buffer: checkpoint writes take long enough to be killed in the middle
            self.nets["model"].register_buffer("pad", torch.zeros(pad))
        self.nan_at, self.blow_up_at = nan_at, blow_up_at

    def train_views(self):
        return ("image", "labels")

    def training_step(self, phase, batch, iteration, ctx):
        out = self.nets["model"](batch["image"])
        loss = nn.functional.binary_cross_entropy_with_logits(out, batch["labels"])
        if self.nan_at is not None and iteration >= self.nan_at:
            loss = loss * float("nan")
        if self.blow_up_at is not None and iteration >= self.blow_up_at:  # finite loss, weights become Inf
            with torch.no_grad():
                self.nets["model"].fc.bias.fill_(float("inf"))
        return StepOutput(losses={"bce": loss}, metrics={"out_mean": out.mean().detach()})


def toy_validator(data: ToyDataset):
    """Validation of a ToyNet on ``data`` as a 2-class segmentation score (raises DataError on a bad sample)."""

    def validate(model: nn.Module) -> SegMetrics:
        model.eval()
        cm = ConfusionMatrix(2)
        with torch.no_grad():
            for i in range(len(data)):
                sample = data[i]
                pred = (model(sample["image"][None]) > 0).long().view(1, 1)
                cm.update(pred, sample["labels"].long().view(1, 1))
        return cm.compute(("bg", "fg"))

    return validate


def ddp_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    """One rank of the 2-process DDP test (kept here so that spawned processes can import it)."""
    import os
    import pathlib

    import torch.distributed as dist

    from darkseg.data.loader import train_stream
    from darkseg.engine.config import TrainConfig
    from darkseg.engine.distributed import DistEnv, init_distributed, unwrap
    from darkseg.engine.trainer import Trainer

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    env = init_distributed(torch.device("cpu"))
    assert env == DistEnv(rank, world, rank)
    torch.manual_seed(100 + rank)  # different init on purpose: DDP must broadcast rank 0's weights
    method = ToyMethod()
    cfg = TrainConfig(iterations=6, log_every=2, ckpt_every=3, progress=False, optim={"lr": 0.05})
    data = ToyDataset()

    def batches(start):
        return train_stream(data, 4, 0, start, 0, "raise", env.rank, env.world_size)

    trainer = Trainer(method, cfg, pathlib.Path(out_dir) / "run", torch.device("cpu"), env,
                      batches, batch_size=4, validate=toy_validator(ToyDataset(n=4)))
    trainer.fit()
    state = unwrap(method.nets["model"]).state_dict()
    torch.save({k: v.clone() for k, v in state.items()}, os.path.join(out_dir, f"rank{rank}.pt"))
    dist.barrier()
    dist.destroy_process_group()


class TwoPhaseMethod(Method):
    """A generator/discriminator-style method: two optimisers stepped in turn, sharing the iteration's ``ctx``."""

    name = "toy2"
    deploy_net = "gen"

    def __init__(self) -> None:
        super().__init__(cfg=None, info=DatasetInfo(("bg", "fg"), (0.5,) * 3, (0.25,) * 3))
        self.nets["gen"] = nn.Conv2d(3, 3, 3, padding=1)
        self.nets["disc"] = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                          nn.Linear(4, 1))
        self.calls: list[str] = []

    def train_views(self):
        return ("image", "labels")

    def optimizers(self):
        from darkseg.methods.base import OptimizerSpec

        return [OptimizerSpec(n, [(f"{n}.{k}", p) for k, p in self.nets[n].named_parameters()]) for n in ("gen", "disc")]

    def training_step(self, phase, batch, iteration, ctx):
        self.calls.append(phase)
        bce = nn.functional.binary_cross_entropy_with_logits
        if phase == "gen":
            fake = self.nets["gen"](batch["image"])
            ctx["fake"] = fake.detach()
            logit = self.nets["disc"](fake)
            return StepOutput(losses={"adv": bce(logit, torch.ones_like(logit))})
        real, fake = self.nets["disc"](batch["image"]), self.nets["disc"](ctx["fake"])
        return StepOutput(losses={"d": bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake))})


def train_toy(run_dir: str, iterations: int, pad: int = 0, **train) -> None:
    """A toy run as the fault tests drive it in a forked process: resumes whatever ``run_dir`` holds."""
    import pathlib

    from darkseg.data.loader import train_stream
    from darkseg.engine.config import TrainConfig
    from darkseg.engine.distributed import DistEnv
    from darkseg.engine.trainer import Trainer

    torch.set_num_threads(1)
    torch.manual_seed(0)
    method = ToyMethod(pad=pad)
    cfg = TrainConfig(iterations=iterations, log_every=1, keep_last=2, progress=False,
                      optim={"lr": 0.05, "momentum": 0.9}, schedule={"name": "poly", "warmup_iters": 2},
                      **{"ckpt_every": 1, **train})
    data = ToyDataset()
    trainer = Trainer(method, cfg, pathlib.Path(run_dir), torch.device("cpu"), DistEnv(),
                      lambda start: train_stream(data, 5, 3, start, 0, "raise"), batch_size=5)
    result = trainer.fit(resume=True)
    if result.interrupted:
        raise SystemExit(128 + result.interrupted)
