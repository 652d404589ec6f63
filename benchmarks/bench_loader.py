"""Loader throughput: images/s of a DataLoader over a generated VOC-layout tree (image, dark, depth, mask, labels).

Two settings: 375×500 JPEGs with the DGKD recipe (long side U{320..640}, crop 321) and 96×96 PNGs as in the
`scenes` benchmark (relative scale 0.9-1.1, crop 96), each for N loader workers.

    python benchmarks/bench_loader.py [--n 200] [--workers 0 1 2] [--batch-size 8] [--epochs 2] [--threads 1]

``--threads`` sets torch and OpenCV threads of the main process (DataLoader workers use 1 torch thread): with
workers=0 the collation runs there, and on a busy machine several intra-op threads make it much slower.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from darkseg.data.io import write_palette_png
from darkseg.data.transforms import AugmentConfig, PairedTransform
from darkseg.data.voc import VOCDataset

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
VIEWS = ("image", "dark", "depth", "mask", "labels")


def make_tree(root: Path, n: int, height: int, width: int, ext: str) -> None:
    """``n`` smooth random photos (+ dark, depth, palette mask) in the VOC layout, split ``train``."""
    rng = np.random.default_rng(0)
    for folder in ("JPEGImages", "dark", "depth", "ImageSets/Segmentation"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    ids = [f"2007_{i:06d}" for i in range(n)]
    for sid in ids:
        coarse = rng.integers(0, 256, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
        image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
        depth = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)  # smooth, like a monocular depth estimate
        image = np.clip(image + rng.normal(0, 4, image.shape), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(root / "JPEGImages" / f"{sid}{ext}", quality=90)
        Image.fromarray(image // 5).save(root / "dark" / f"{sid}{ext}", quality=90)
        mask = np.zeros((height, width), np.uint8)
        for _ in range(3):
            y, x = rng.integers(0, height - 8), rng.integers(0, width - 8)
            mask[y : y + height // 3, x : x + width // 3] = rng.integers(1, 21)
        mask[:2] = 255
        write_palette_png(root / "SegmentationClassAug" / f"{sid}.png", mask)
        cv2.imwrite(str(root / "depth" / f"{sid}_depth.png"), cv2.cvtColor(depth, cv2.COLOR_GRAY2BGR))
    (root / "ImageSets/Segmentation/train.txt").write_text("\n".join(ids) + "\n")


def images_per_second(dataset: VOCDataset, workers: int, batch_size: int, epochs: int) -> tuple[float, float]:
    """(steady-state images/s after the first batch, seconds to the first batch)."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=True)
    start = time.perf_counter()
    first, count = None, 0
    for _ in range(epochs):
        for batch in loader:
            if first is None:
                first = time.perf_counter()
            else:
                count += len(batch["id"])
    return count / (time.perf_counter() - first), first - start


def per_sample_ms(dataset: VOCDataset, n: int = 40) -> tuple[float, float]:
    """(load ms, transform ms) per sample in the main process."""
    t0 = time.perf_counter()
    samples = [dataset.load(i % len(dataset)) for i in range(n)]
    t1 = time.perf_counter()
    for i, sample in enumerate(samples):
        dataset.transform(sample, np.random.default_rng(i))
    return (t1 - t0) * 1000 / n, (time.perf_counter() - t1) * 1000 / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    settings = {
        "crop 321 (375x500 jpg, long side 320-640, bicubic)": (
            (375, 500, ".jpg"),
            AugmentConfig(crop_size=321, scale_mode="long_side", long_side=(320, 640), image_interp="bicubic"),
        ),
        "crop 96 (96x96 png, relative 0.9-1.1, bilinear)": (
            (96, 96, ".png"),
            AugmentConfig(crop_size=96, scale_mode="relative", scale_range=(0.9, 1.1), image_interp="bilinear"),
        ),
    }
    print("command: python " + " ".join(shlex.quote(a) for a in sys.argv))
    print(f"torch {torch.__version__}, cv2 {cv2.__version__}, main-process threads {args.threads}, n={args.n}, "
          f"batch {args.batch_size}, epochs {args.epochs}, views {','.join(VIEWS)}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for name, ((height, width, ext), cfg) in settings.items():
            root = Path(tmp) / f"{height}x{width}"
            make_tree(root, args.n, height, width, ext)
            dataset = VOCDataset(root, "train", VIEWS, transform=PairedTransform(cfg, MEAN, STD))
            load_ms, aug_ms = per_sample_ms(dataset)
            print(f"{name}: load {load_ms:.1f} ms + augment {aug_ms:.1f} ms per sample (main process)")
            for workers in args.workers:
                rate, startup = images_per_second(dataset, workers, args.batch_size, args.epochs)
                print(f"  workers={workers}: {rate:7.1f} images/s (first batch after {startup:.2f} s)")


if __name__ == "__main__":
    main()
