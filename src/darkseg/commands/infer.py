"""``darkseg infer``: palette PNG masks and colour overlays for an image, a folder or a list of images."""

from __future__ import annotations

import argparse
from pathlib import Path

from darkseg.commands._common import add_config_arguments, load
from darkseg.errors import DarksegError

HELP = "segment an image, a folder or a list file of images: palette PNG masks and colour overlays"
ORDER = 30
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--input", "-i", nargs="+", required=True, type=Path,
                        help="image files, folders, or .txt files listing image paths")
    parser.add_argument("--out", "-o", type=Path, required=True, help="output folder")
    parser.add_argument("--weights", type=Path,
                        help="exported weights or checkpoint dir (default: <run>/model_final.safetensors)")
    parser.add_argument("--depth", type=Path,
                        help="depth maps (<stem>.png, <stem>_depth.png or <stem>.npy) for depth-guided models")
    parser.add_argument("--alpha", type=float, default=0.5, help="overlay opacity (default 0.5)")


def collect_images(inputs: list[Path]) -> list[Path]:
    """Expand files, folders (sorted, recursively) and list files into image paths."""
    images: list[Path] = []
    for item in inputs:
        if item.is_dir():
            images += sorted(p for p in item.rglob("*") if p.suffix.lower() in IMAGE_EXTS)
        elif item.suffix.lower() == ".txt" and item.is_file():
            base = item.parent
            for line in item.read_text().splitlines():
                if line.strip():
                    p = Path(line.split()[0])
                    images.append(p if p.is_absolute() else base / p)
        elif item.is_file():
            images.append(item)
        else:
            raise DarksegError(f"{item}: no such image, folder or list file")
    if not images:
        raise DarksegError(f"no images found in {', '.join(map(str, inputs))}")
    return images


def run(args: argparse.Namespace) -> int:
    cfg = load(args)
    if cfg is None:
        return 0
    import numpy as np
    import torch
    from PIL import Image
    from tqdm import tqdm

    from darkseg.data.io import VOC_PALETTE, find_file, read_depth, read_image, write_palette_png
    from darkseg.engine.inference import labels_from_probs, predict_probs
    from darkseg.engine.runner import load_deployed, setup_runtime

    infer_cfg = cfg.eval.inference
    if infer_cfg.class_filter == "gt":
        raise DarksegError("eval.inference.class_filter=gt needs ground-truth labels; use pred or none for infer")
    images = collect_images(args.input)
    device, _ = setup_runtime(cfg)
    model = load_deployed(cfg, args.weights, device)
    if getattr(model, "uses_depth", False) and args.depth is None:
        raise DarksegError("this model is depth-guided: pass --depth DIR with a depth map per image")
    args.out.mkdir(parents=True, exist_ok=True)
    for path in tqdm(images, desc="infer", dynamic_ncols=True):
        rgb = read_image(path)
        x = torch.from_numpy(rgb).permute(2, 0, 1).float().div(255).unsqueeze(0).to(device)
        depth = None
        if args.depth is not None and getattr(model, "uses_depth", False):
            dpath = find_file(args.depth, (path.stem, f"{path.stem}_depth"), (".png", ".npy"))
            if dpath is None:
                raise DarksegError(f"{args.depth}: no depth map for {path.name} ({path.stem}.png/_depth.png/.npy)")
            d = read_depth(dpath)
            if d.shape != rgb.shape[:2]:
                raise DarksegError(f"{dpath}: depth size {d.shape[::-1]} differs from {path.name} {rgb.shape[1::-1]}")
            depth = torch.from_numpy(d)[None, None].float().to(device)
        probs = predict_probs(model, x, infer_cfg, depth=depth)
        label = labels_from_probs(probs, x, infer_cfg)[0].cpu().numpy().astype(np.uint8)
        write_palette_png(args.out / f"{path.stem}.png", label)
        colour = VOC_PALETTE[label]
        overlay = (1 - args.alpha) * rgb + args.alpha * colour
        overlay[label == 0] = rgb[label == 0]
        Image.fromarray(overlay.round().astype(np.uint8)).save(args.out / f"{path.stem}_overlay.jpg", quality=92)
    print(f"wrote {len(images)} masks and overlays to {args.out}")
    return 0
