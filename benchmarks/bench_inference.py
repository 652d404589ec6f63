"""Images/s of a config's deployed network (default: the DGKD-WLSS student, WideResNet-38 SSSS) at 321² against the
machine's measured convolution throughput, reported as the fraction of it the network reaches (issue 20 §3).

The reference throughput is the median GMAC/s of a large 3×3 convolution (512→512 channels on 64×64, 9.66 GMAC,
batch 1, float32, the same threads) in the faster of the two memory formats (oneDNN on CPU: channels-last). The network's GMAC come from ``engine.profile.count_gmac`` (convolutions and
matrix products only), so fraction = GMAC × images/s ÷ reference GMAC/s. Variants: eager float32, channels-last,
torch.compile (inductor) and bf16 autocast, each where it applies (bf16 only with native bfloat16 on a CPU: elsewhere
it runs float32 and is left out, as ``precision.effective_amp`` does in training). Random weights (the cost does
not depend on them), ``torch.inference_mode``.

    OMP_NUM_THREADS=2 python benchmarks/bench_inference.py --threads 2
    python benchmarks/bench_inference.py --config configs/segmenters/deeplabv2_r101_cityscapes.yaml --size 512 \\
        --variants eager channels_last
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from darkseg.config import load_config
from darkseg.engine.profile import count_gmac
from darkseg.engine.runner import dataset_info
from darkseg.models.factory import build_segmenter
from darkseg.precision import cpu_has_native_bf16

VARIANTS = ("eager", "channels_last", "compile", "compile_channels_last", "bf16")


def median_seconds(fn: Callable[[], object], calls: int, warmup: int, device: torch.device) -> float:
    times = []
    for i in range(warmup + calls):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def conv_gmac_per_s(device: torch.device, calls: int) -> dict[str, float]:
    """Measured GMAC/s of a large 3×3 convolution (1×512×64×64 → 512 channels, float32) in each memory format."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 512, 64, 64, generator=gen).to(device)
    w = (torch.randn(512, 512, 3, 3, generator=gen) * 0.01).to(device)
    gmac = 512 * 512 * 9 * 64 * 64 / 1e9
    out = {}
    with torch.inference_mode():
        for name, fmt in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last)):
            xf, wf = x.contiguous(memory_format=fmt), w.contiguous(memory_format=fmt)
            out[name] = gmac / median_seconds(lambda xf=xf, wf=wf: F.conv2d(xf, wf, padding=1), calls, 2, device)
    return out


def deployed_model(config: str, overrides: list[str], device: torch.device) -> tuple[torch.nn.Module, bool]:
    cfg = load_config(config, overrides)
    info = dataset_info(cfg)
    model = build_segmenter(cfg.model, info.num_classes, info.mean, info.std, load_pretrained=False)
    return model.to(device).eval(), getattr(model, "uses_depth", False)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/dgkd_wlss/voc_student.yaml")
    p.add_argument("--size", type=int, default=321)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--calls", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    p.add_argument("overrides", nargs="*", help="config overrides")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model, uses_depth = deployed_model(args.config, args.overrides, device)
    x = torch.rand(args.batch, 3, args.size, args.size, device=device)
    depth = torch.rand(args.batch, 1, args.size, args.size, device=device) if uses_depth else None
    with torch.inference_mode():
        gmac, _ = count_gmac(lambda: model(x, depth))
    gmac /= args.batch
    formats = conv_gmac_per_s(device, args.calls)
    reference = max(formats.values())
    load = os.getloadavg()
    print(f"command: python {' '.join(shlex.quote(a) for a in sys.argv)}")
    print(f"{args.config} deployed network, {gmac:.1f} GMAC per {args.size}² image, batch {args.batch}, "
          f"{device}, {args.threads} threads; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"reference 3×3 convolution (512→512, 64×64, fp32), the faster memory format: {reference:.1f} GMAC/s "
          f"({2 * reference:.1f} GFLOP/s); " + ", ".join(f"{k} {v:.1f}" for k, v in formats.items()))
    bf16_native = device.type == "cuda" or cpu_has_native_bf16()
    for variant in args.variants:
        if variant == "bf16" and not bf16_native:
            print(f"{variant:22s} left out: this CPU has no native bfloat16 ({torch.backends.cpu.get_cpu_capability()})"
                  ", bf16 here would run as float32 (the eager row)")
            continue
        net, inp = model, x
        if "channels_last" in variant:
            net = model.to(memory_format=torch.channels_last)
            inp = x.contiguous(memory_format=torch.channels_last)
        else:
            net = model.to(memory_format=torch.contiguous_format)
        if variant.startswith("compile"):
            net = torch.compile(net)
        amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=variant == "bf16")
        t0 = time.perf_counter()

        def run(net=net, inp=inp, amp=amp) -> object:
            with torch.inference_mode(), amp:
                return net(inp, depth)

        seconds = median_seconds(run, args.calls, args.warmup, device)
        rate = args.batch / seconds
        print(f"{variant:22s} {rate:7.3f} images/s ({seconds * 1000:8.1f} ms per batch), "
              f"{gmac * rate:6.1f} GMAC/s = {gmac * rate / reference:5.1%} of the reference convolution "
              f"[{time.perf_counter() - t0:.0f} s incl. warm-up]", flush=True)


if __name__ == "__main__":
    main()
