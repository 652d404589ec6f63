"""Time per training iteration and peak memory of CCDistill divided by those of its source-only baseline (issue 19).

CCDistill trains two segmenters, each on two domain batches (M_d on S_d and T_d, M_n on S_n and T_n), plus the
projection head: four forward/backward passes where source-only has one, so about 4× its cost is expected.
Each config runs in a fresh subprocess (clean peak memory), alternating over rounds; an iteration is the full
step (forward, losses, backward, optimiser step) on a synthetic batch of the config's batch size and crop (every
domain of a multi-domain method gets its own). The figure is the median of per-round ratios.

    python benchmarks/bench_ccdistill_cost.py                                # CPU, scenes configs
    python benchmarks/bench_ccdistill_cost.py --device cuda \\
        --baseline configs/segmenters/refinenet_r101_cityscapes.yaml \\
        --ccdistill configs/ccdistill/dz_ccdistill.yaml data.batch_size=2
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


def synthetic_batch(method, crop: int, batch: int, device) -> dict:  # noqa: ANN001
    """Random images / masks for every view the method reads (prefixed by domain for multi-domain methods)."""
    import torch

    def views(names: tuple[str, ...], prefix: str) -> dict:
        out = {}
        for v in names:
            if v in ("image", "dark", "day"):
                out[prefix + v] = torch.rand(batch, 3, crop, crop, device=device)
            elif v == "mask":
                out[prefix + v] = torch.randint(0, method.info.num_classes, (batch, crop, crop), device=device)
            elif v == "flow":
                out[prefix + v] = torch.zeros(batch, 2, crop, crop, device=device)
        return out

    domains = method.train_domains()
    if domains is None:
        return views(method.train_views(), "")
    return {k: v for name, d in domains.items() for k, v in views(d.views, f"{name}/").items()}


def measure(config: str, device: str, threads: int, iters: int, warmup: int, overrides: list[str]) -> dict:
    """Median seconds per iteration and peak memory of one config's training step."""
    import torch

    from darkseg.config import load_config
    from darkseg.engine.optim import build_optimizer, build_param_groups
    from darkseg.engine.runner import build_method
    from darkseg.engine.trainer import autocast_context

    torch.set_num_threads(threads)
    cfg = load_config(config, overrides + [f"train.device={device}"])
    dev = torch.device(device)
    torch.manual_seed(0)
    method = build_method(cfg, load_external=False)
    method.nets.to(dev).train()
    spec = method.optimizers()[0]
    opt = build_optimizer(build_param_groups(spec.named_parameters, spec.pretrained_prefixes, cfg.train.optim),
                          cfg.train.optim)
    crop, b = cfg.data.augment.crop_size, cfg.data.batch_size
    batch = synthetic_batch(method, crop, b, dev)
    times = []
    for i in range(warmup + iters):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with autocast_context(cfg.train.amp, dev):
            out = method.training_step("main", batch, i, {})
        sum(out.losses.values()).backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    peak = (torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"s_per_iter": statistics.median(times), "peak_mib": peak, "batch": b, "crop": crop}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline", default="configs/daynight/scenes_source_only_deeplabv2.yaml")
    p.add_argument("--ccdistill", default="configs/ccdistill/scenes_ccdistill.yaml")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--iters", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one config in this process
    p.add_argument("overrides", nargs="*", help="config overrides applied to both configs")
    args = p.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.device, args.threads, args.iters, args.warmup, args.overrides)))
        return
    results: dict[str, list[dict]] = {"baseline": [], "ccdistill": []}
    for _ in range(args.rounds):
        for name in results:
            cmd = [sys.executable, __file__, "--one", getattr(args, name), "--device", args.device,
                   "--threads", str(args.threads), "--iters", str(args.iters), "--warmup", str(args.warmup),
                   *args.overrides]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            results[name].append(json.loads(out))
    t = {k: statistics.median(r["s_per_iter"] for r in v) for k, v in results.items()}
    mem = {k: max(r["peak_mib"] for r in v) for k, v in results.items()}
    ratios = [c["s_per_iter"] / b["s_per_iter"] for b, c in zip(results["baseline"], results["ccdistill"], strict=True)]
    first = results["baseline"][0]
    print(f"command: python {' '.join(shlex.quote(a) for a in sys.argv)}")
    print(f"device {args.device}, {args.threads} threads, batch {first['batch']} per domain, crop {first['crop']}, "
          f"median over {args.rounds} rounds × {args.iters} iterations")
    print(f"source-only: {t['baseline'] * 1000:8.1f} ms/iteration, peak memory {mem['baseline']:8.0f} MiB")
    print(f"ccdistill  : {t['ccdistill'] * 1000:8.1f} ms/iteration, peak memory {mem['ccdistill']:8.0f} MiB")
    print(f"cost ratio : {statistics.median(ratios):.2f} (median of rounds; range {min(ratios):.2f}-{max(ratios):.2f};"
          f" four domain batches: ≈ 4 expected), memory ratio {mem['ccdistill'] / mem['baseline']:.2f}")


if __name__ == "__main__":
    main()
