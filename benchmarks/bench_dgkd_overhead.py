"""Time per training iteration of DGKD-WLSS divided by that of the dark student baseline (issue 6 §6); any method's
config against its baseline's with ``--dgkd METHOD_CONFIG --student BASELINE_CONFIG`` (e.g. CCDistill against the
source-only segmenter, SEAM+PLDA against SEAM).

Each variant runs in a fresh subprocess (clean peak memory), alternating over several rounds; an iteration is the
full trainer step (forward, losses, backward, optimiser step) on a synthetic batch at the config's batch and crop.
The teacher has random weights (its cost does not depend on them). The figure is the median of the per-round
ratios (each round times both variants back to back, so slow phases of a shared machine affect both); the range
over rounds is printed with it.

    python benchmarks/bench_dgkd_overhead.py                       # CPU small configs (scenes)
    python benchmarks/bench_dgkd_overhead.py --device cuda --student configs/dgkd_wlss/voc_student.yaml \\
        --dgkd configs/dgkd_wlss/voc_dgkd.yaml
    python benchmarks/bench_dgkd_overhead.py --student configs/daynight/scenes_source_only_deeplabv2.yaml \\
        --dgkd configs/ccdistill/scenes_ccdistill.yaml --threads 1 --rounds 2 --iters 5
"""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path


def measure(config: str, device: str, threads: int, iters: int, warmup: int, overrides: list[str]) -> dict:
    """Median seconds per iteration and peak memory of one config's training step."""
    import torch

    from darkseg.config import load_config
    from darkseg.engine.optim import build_optimizer, build_param_groups
    from darkseg.engine.profile import synthetic_batch
    from darkseg.engine.runner import build_method
    from darkseg.engine.trainer import autocast_context

    torch.set_num_threads(threads)
    cfg = load_config(config, overrides + [f"train.device={device}"])
    dev = torch.device(device)
    torch.manual_seed(0)
    method = build_method(cfg, load_external=False)
    method.nets.to(dev).train()
    if cfg.train.channels_last:
        method.nets.to(memory_format=torch.channels_last)
    spec = method.optimizers()[0]
    opt = build_optimizer(build_param_groups(spec.named_parameters, spec.pretrained_prefixes, cfg.train.optim),
                          cfg.train.optim)
    crop, b = cfg.data.augment.crop_size, cfg.data.batch_size
    batch = synthetic_batch(method, crop, dev, b)  # every view (per domain for multi-domain methods)
    for key in [k for k in batch if k.rsplit("/", 1)[-1] == "labels"]:
        batch[key] = (torch.rand(b, method.info.num_classes - 1, device=dev) > 0.7).float()
    if cfg.train.channels_last:
        batch = {k: v.contiguous(memory_format=torch.channels_last) if torch.is_tensor(v) and v.ndim == 4 else v
                 for k, v in batch.items()}
    scaler = torch.amp.GradScaler(dev.type, enabled=cfg.train.amp == "fp16")
    times = []
    for i in range(warmup + iters):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with autocast_context(cfg.train.amp, dev):
            out = method.training_step("main", batch, 10**9, {})
        scaler.scale(sum(out.losses.values())).backward()
        scaler.step(opt)
        scaler.update()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    peak = (torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"s_per_iter": statistics.median(times), "peak_mib": peak, "batch": b, "crop": crop}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--student", default="configs/dgkd_wlss/scenes_student.yaml")
    p.add_argument("--dgkd", default="configs/dgkd_wlss/scenes_dgkd.yaml")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one config in this process
    p.add_argument("overrides", nargs="*", help="config overrides applied to both configs")
    args = p.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.device, args.threads, args.iters, args.warmup, args.overrides)))
        return
    results: dict[str, list[dict]] = {"student": [], "dgkd": []}
    for _ in range(args.rounds):
        for name in results:
            cmd = [sys.executable, __file__, "--one", getattr(args, name), "--device", args.device,
                   "--threads", str(args.threads), "--iters", str(args.iters), "--warmup", str(args.warmup),
                   *args.overrides]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            results[name].append(json.loads(out))
    t = {k: statistics.median(r["s_per_iter"] for r in v) for k, v in results.items()}
    mem = {k: max(r["peak_mib"] for r in v) for k, v in results.items()}
    ratios = [d["s_per_iter"] / s["s_per_iter"] for s, d in zip(results["student"], results["dgkd"], strict=True)]
    first = results["student"][0]
    print(f"command: python {' '.join(shlex.quote(a) for a in sys.argv)}")
    print(f"device {args.device}, {args.threads} threads, batch {first['batch']}, crop {first['crop']}, "
          f"median over {args.rounds} rounds × {args.iters} iterations")
    for key, role in (("student", "baseline"), ("dgkd", "method")):
        print(f"{role} {Path(getattr(args, key)).stem}: {t[key] * 1000:8.1f} ms/iteration, "
              f"peak memory {mem[key]:8.0f} MiB")
    print(f"overhead ratio  : {statistics.median(ratios):.2f} (median of rounds; range {min(ratios):.2f}-"
          f"{max(ratios):.2f}; DGKD-WLSS target ≤ 1.4)")


if __name__ == "__main__":
    main()
