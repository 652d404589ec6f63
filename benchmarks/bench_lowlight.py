"""Throughput of the low-light synthesis at VOC size (375x500): images/s on CPU (1 and 2 threads) and CUDA.

Run: python benchmarks/bench_lowlight.py [--preset maet] [--batch 8] [--repeats 15] [--threads 1 2]
Prints the command, then one line per setting: median images/s over the timed repeats (after warm-up) and CPU time
per image. On a shared machine the absolute figures are noisy, so the first line times a plain per-image MAET-style
loop (written here from the published steps, one image at a time, global RNGs) back to back, on one thread.
"""

from __future__ import annotations

import argparse
import random
import shlex
import statistics
import sys
import time
from collections.abc import Callable

import torch
from scipy import stats

from darkseg.lowlight import LowLightConfig, LowLightSynthesizer
from darkseg.lowlight.params import SRGB_TO_XYZ, XYZ_TO_CAMS


def _picture(batch: int, device: str) -> torch.Tensor:
    """Smooth photo-like images with texture, mean about 0.4."""
    gen = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 375), torch.linspace(0, 1, 500), indexing="ij")
    base = torch.stack([0.4 + 0.25 * torch.sin(5 * xx + c) * torch.cos(3 * yy) for c in range(3)])
    img = base[None] + 0.05 * torch.randn(batch, 3, 375, 500, generator=gen)
    return img.clamp(0, 1).to(device)


def per_image_loop(images: torch.Tensor) -> torch.Tensor:
    """Baseline: the MAET steps one image at a time, separate CCM/WB products, scipy truncnorm, global RNGs."""
    rgb2xyz = torch.tensor(SRGB_TO_XYZ)
    outs = []
    for img in images:
        gamma, g = random.uniform(2.0, 3.5), random.normalvariate(0.8, 0.1)
        r, b = random.uniform(1.9, 2.4), random.uniform(1.5, 1.9)
        rgb2cam = torch.tensor(random.choice(XYZ_TO_CAMS)) @ rgb2xyz
        rgb2cam = rgb2cam / rgb2cam.sum(dim=-1, keepdim=True)
        x = (0.5 - torch.sin(torch.asin(1.0 - 2.0 * img) / 3.0)).clamp(min=1e-8) ** gamma
        x = torch.tensordot(x.permute(1, 2, 0), rgb2cam, dims=([-1], [-1])).permute(2, 0, 1)
        x = x * (g * torch.tensor([1 / r, 1.0, 1 / b]))[:, None, None]
        x = x * float(stats.truncnorm(-1.125, 11.25, loc=0.1, scale=0.08).rvs())
        ln_shot = random.uniform(-9.2103, -4.4228)
        read = torch.exp(torch.tensor(2.18 * ln_shot + 1.20 + random.normalvariate(0, 0.26)))
        x = torch.normal(x, (x * float(torch.exp(torch.tensor(ln_shot))) + read).clamp(min=1e-8).sqrt())
        half = 1 / (255 * random.choice([12, 14, 16]))
        x = x + torch.empty_like(x).uniform_(-half, half)
        x = x * torch.tensor([r, 1.0, b])[:, None, None]
        x = torch.tensordot(x.permute(1, 2, 0), torch.linalg.inv(rgb2cam), dims=([-1], [-1])).permute(2, 0, 1)
        outs.append(x.clamp(min=1e-8) ** (1 / gamma))
    return torch.stack(outs)


def bench(fn: Callable[[torch.Tensor, list[int]], torch.Tensor], device: str, batch: int, repeats: int
          ) -> tuple[float, float]:
    """Median images/s (wall) and median CPU seconds per image."""
    x = _picture(batch, device)
    for r in range(3):
        fn(x, list(range(r * batch, (r + 1) * batch)))
    walls, cpus = [], []
    for r in range(repeats):
        seeds = [(r + 3) * batch + i for i in range(batch)]
        if device == "cuda":
            torch.cuda.synchronize()
        w0, c0 = time.perf_counter(), time.process_time()
        fn(x, seeds)
        if device == "cuda":
            torch.cuda.synchronize()
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return batch / statistics.median(walls), statistics.median(cpus) / batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="maet", choices=["maet", "brooks", "no-noise"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    synth = LowLightSynthesizer(LowLightConfig(preset=args.preset))
    size = f"375x500 batch={args.batch}"
    print(f"command: python {shlex.join(sys.argv)}   (torch {torch.__version__}, {torch.get_num_threads()} threads)")
    torch.set_num_threads(1)
    ips, cpu = bench(lambda x, _: per_image_loop(x), "cpu", args.batch, args.repeats)
    print(f"cpu  threads=1 per-image baseline {size}: {ips:7.1f} images/s ({cpu * 1e3:.2f} ms CPU per image)")
    for threads in args.threads:
        torch.set_num_threads(threads)
        ips, cpu = bench(synth, "cpu", args.batch, args.repeats)
        print(f"cpu  threads={threads} preset={args.preset} {size}: {ips:7.1f} images/s "
              f"({ips / threads:6.1f} per core; {cpu * 1e3:.2f} ms CPU per image)")
    if torch.cuda.is_available():
        ips, _ = bench(synth, "cuda", args.batch, args.repeats)
        print(f"cuda {torch.cuda.get_device_name()} preset={args.preset} {size}: {ips:7.1f} images/s")


if __name__ == "__main__":
    main()
