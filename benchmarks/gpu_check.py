"""What a session with a GPU runs first: every method's recipe for a few training iterations on one GPU, in eager
float32, bf16 autocast + channels-last, and (DGKD pair by default, ``--compile all`` for every recipe) + torch.compile,
with images/s, peak memory and the time each row took; the DGKD overhead ratio per variant; PAMR and low-light
synthesis throughput; exit status 1 if a row failed. About 6 minutes on one H200 (rows past ``--budget`` seconds are skipped and listed).

Each row is ``engine.profile.StepBench``: the full trainer iteration (all phases) on a synthetic batch at the
recipe's batch and crop, random weights (no files needed). Without CUDA it prints one line and exits 0;
``--dry`` runs every code path on the CPU at tiny sizes (the scenes configs, batch 2, crop 64, one iteration;
channels-last left out on CPU, torch.compile with the ``eager`` backend), which is what the test runs.

    python benchmarks/gpu_check.py                 # on a CUDA machine
    python benchmarks/gpu_check.py --dry           # CPU dry run, ~20 s
    python benchmarks/gpu_check.py --only dgkd_wlss plda --compile all
"""

from __future__ import annotations

import argparse
import gc
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

# (row name, GPU recipe, tiny CPU config of the same method and model family)
RECIPES: tuple[tuple[str, str, str], ...] = (
    ("dgkd_wlss/teacher", "configs/dgkd_wlss/voc_teacher.yaml", "configs/dgkd_wlss/scenes_teacher.yaml"),
    ("dgkd_wlss/student", "configs/dgkd_wlss/voc_student.yaml", "configs/dgkd_wlss/scenes_student.yaml"),
    ("dgkd_wlss/dgkd", "configs/dgkd_wlss/voc_dgkd.yaml", "configs/dgkd_wlss/scenes_dgkd.yaml"),
    ("dgkd_wlss/dgkd_dgf2", "configs/dgkd_wlss/voc_dgkd_dgf2.yaml", "configs/dgkd_wlss/scenes_dgkd_dgf2.yaml"),
    ("plda", "configs/plda/voc_plda.yaml", "configs/plda/scenes_plda.yaml"),
    ("asdt", "configs/asdt/voc_asdt.yaml", "configs/asdt/scenes_asdt.yaml"),
    ("dania", "configs/dania/dania_deeplabv2_cityscapes_darkzurich.yaml", "configs/dania/scenes_dania_deeplabv2.yaml"),
    ("ccdistill", "configs/ccdistill/dz_ccdistill.yaml", "configs/ccdistill/scenes_ccdistill.yaml"),
    ("deeplabv1", "configs/segmenters/deeplabv1_r38_voc_pseudo.yaml", "configs/segmenters/scenes_deeplabv1.yaml"),
    ("deeplabv2", "configs/segmenters/deeplabv2_r101_cityscapes.yaml", "configs/segmenters/scenes_deeplabv2.yaml"),
    ("pspnet", "configs/segmenters/pspnet_r101_cityscapes.yaml", "configs/segmenters/scenes_pspnet.yaml"),
    ("refinenet", "configs/segmenters/refinenet_r101_cityscapes.yaml", "configs/segmenters/scenes_refinenet.yaml"),
)
RATIOS = (("dgkd_wlss/dgkd", "dgkd_wlss/student"), ("dgkd_wlss/dgkd_dgf2", "dgkd_wlss/student"))
COMPILED_BY_DEFAULT = ("dgkd_wlss/student", "dgkd_wlss/dgkd")
DRY_OVERRIDES = ["data.batch_size=2", "data.augment.crop_size=64"]


@dataclass
class Settings:
    device: str
    dry: bool
    iters: int
    warmup: int
    compile_backend: str
    budget_s: float

    @property
    def variants(self) -> dict[str, list[str]]:
        """Variant name -> train overrides; channels-last is a GPU setting (the trainer refuses it on CPU)."""
        cl = [] if self.device == "cpu" else ["train.channels_last=true"]
        name = "bf16" if self.device == "cpu" else "bf16+cl"
        return {"fp32": ["train.amp=off"], name: ["train.amp=bf16", *cl],
                f"{name}+compile": ["train.amp=bf16", *cl, "train.compile=true"]}


def _free(device: str) -> None:
    gc.collect()
    torch._dynamo.reset()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


def run_row(config: str, overrides: list[str], s: Settings) -> dict:
    """One recipe in one variant: seconds per iteration, images/s, peak memory (MiB) and the row's wall time."""
    from darkseg.engine.profile import StepBench, bench_config

    t0 = time.perf_counter()
    cfg, _ = bench_config(config, s.device, overrides)
    bench = StepBench(cfg, compile_backend=s.compile_backend)
    timing = bench.run(s.iters, s.warmup, parts={})
    del bench
    _free(s.device)
    return {"s_per_iter": timing.median, "images_per_s": timing.batch / timing.median, "peak_mib": timing.peak_mib,
            "batch": timing.batch, "crop": timing.crop, "amp": timing.amp, "row_s": time.perf_counter() - t0}


def _throughput(fn: Callable[[], object], images: int, calls: int, device: str) -> float:
    """Images per second of ``fn`` (which processes ``images`` images), median over ``calls`` after one warm-up."""
    times = []
    for i in range(calls + 1):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t0)
    return images / statistics.median(times)


def ops_throughput(s: Settings) -> list[str]:
    """PAMR (B=2, C=21, 321², 10 iterations, official dilations) and low-light synthesis (batch 8, 375×500)."""
    from darkseg.lowlight import LowLightConfig, LowLightSynthesizer
    from darkseg.models.ops.pamr import PAMR

    gen = torch.Generator().manual_seed(0)
    side, (h, w) = (32, (24, 32)) if s.dry else (321, (375, 500))
    image = torch.rand(2, 3, side, side, generator=gen).to(s.device)
    mask = torch.softmax(torch.randn(2, 21, side // 4, side // 4, generator=gen), 1).to(s.device)
    pamr = PAMR(num_iter=10, dilations=(1, 2, 4, 8, 12, 24))
    calls = 1 if s.dry else 10
    lines = [f"PAMR B=2 C=21 {side}²: {_throughput(lambda: pamr(image, mask), 2, calls, s.device):8.1f} images/s"]
    synth = LowLightSynthesizer(LowLightConfig(preset="maet"))
    photos = torch.rand(8, 3, h, w, generator=gen).to(s.device)
    rate = _throughput(lambda: synth(photos, list(range(8))), 8, calls, s.device)
    lines.append(f"low-light synthesis (maet) batch 8 {h}×{w}: {rate:8.1f} images/s")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry", action="store_true", help="every code path on the CPU at tiny sizes")
    p.add_argument("--only", nargs="+", default=None, metavar="ROW", help="recipes by name (e.g. dgkd_wlss/dgkd) or group (dgkd_wlss)")
    p.add_argument("--compile", default="dgkd", choices=["dgkd", "all", "none"],
                   help="recipes run with torch.compile: the DGKD pair (default), every recipe, or none")
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--budget", type=float, default=420.0, help="seconds after which remaining rows are skipped")
    args = p.parse_args(argv)
    if not args.dry and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here (torch.cuda.is_available() is False): nothing to check; "
              "run it on a GPU machine, or with --dry for a CPU run of every code path")
        return 0
    s = Settings(device="cpu" if args.dry else "cuda", dry=args.dry, iters=1 if args.dry else args.iters,
                 warmup=0 if args.dry else args.warmup, compile_backend="eager" if args.dry else "inductor",
                 budget_s=args.budget)
    start = time.perf_counter()
    where = "CPU dry run (tiny sizes; timings meaningless)" if s.dry else torch.cuda.get_device_name()
    print(f"command: python {' '.join(shlex.quote(a) for a in sys.argv)}")
    print(f"gpu_check on {where}, torch {torch.__version__}, {s.warmup} warm-up + {s.iters} timed iterations per row")
    print(f"{'recipe':22s}{'variant':18s}{'batch×crop':>11s}{'amp':>6s}{'ms/iter':>10s}{'images/s':>10s}"
          f"{'peak MiB':>10s}{'row s':>8s}")
    results: dict[tuple[str, str], dict] = {}
    skipped, failed = [], []
    for name, gpu_config, dry_config in RECIPES:
        if args.only and not any(name == o or name.startswith(f"{o}/") for o in args.only):
            continue
        for variant, overrides in s.variants.items():
            if variant.endswith("compile") and not (
                    args.compile == "all" or (args.compile == "dgkd" and name in COMPILED_BY_DEFAULT)):
                continue
            if time.perf_counter() - start > s.budget_s:
                skipped.append(f"{name} {variant}")
                continue
            config, extra = (dry_config, DRY_OVERRIDES) if s.dry else (gpu_config, [])
            try:
                r = run_row(config, [*extra, *overrides], s)
            except Exception as err:  # noqa: BLE001  # a failing recipe is a finding of the check, not its end
                print(f"{name:22s}{variant:18s} FAILED: {err.__class__.__name__}: {str(err).splitlines()[0][:200]}")
                failed.append(f"{name} {variant}")
                _free(s.device)
                continue
            results[name, variant] = r
            print(f"{name:22s}{variant:18s}{str(r['batch']) + '×' + str(r['crop']):>11s}{r['amp']:>6s}"
                  f"{r['s_per_iter'] * 1000:10.1f}{r['images_per_s']:10.1f}{r['peak_mib']:10.0f}{r['row_s']:8.1f}",
                  flush=True)
    for method, base in RATIOS:
        for variant in s.variants:
            if (method, variant) in results and (base, variant) in results:
                ratio = results[method, variant]["s_per_iter"] / results[base, variant]["s_per_iter"]
                print(f"ratio {method} / {base} ({variant}): {ratio:.2f} (target ≤ 1.4 for dgkd)")
    for line in ops_throughput(s):
        print(line)
    if skipped:
        print(f"skipped (past the {s.budget_s:.0f} s budget): {', '.join(skipped)}")
    if failed:
        print(f"failed: {', '.join(failed)}")
    print(f"total {time.perf_counter() - start:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
