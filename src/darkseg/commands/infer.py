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


def collect_images(inputs: list[Path]) -> list[tuple[Path, Path]]:
    """Expand files, folders (sorted, recursively) and list files into (image path, output-relative path).

    Images of a folder keep their path under it; images of a list file keep their path under the list's folder
    when they are inside it; other images keep their file name.
    """
    images: list[tuple[Path, Path]] = []
    for item in inputs:
        if item.is_dir():
            images += [(p, p.relative_to(item)) for p in sorted(item.rglob("*")) if p.suffix.lower() in IMAGE_EXTS]
        elif item.suffix.lower() == ".txt" and item.is_file():
            base = item.parent
            for line in item.read_text().splitlines():
                if line.strip():
                    p = Path(line.split()[0])
                    p = p if p.is_absolute() else base / p
                    images.append((p, p.relative_to(base) if p.is_relative_to(base) else Path(p.name)))
        elif item.is_file():
            images.append((item, Path(item.name)))
        else:
            raise DarksegError(f"{item}: no such image, folder or list file")
    if not images:
        raise DarksegError(f"no images found in {', '.join(map(str, inputs))}")
    return images


def output_paths(rel: Path, out: Path) -> tuple[Path, Path]:
    """(palette mask, overlay) written for an image with output-relative path ``rel``."""
    return out / rel.with_suffix(".png"), out / rel.parent / f"{rel.stem}_overlay.jpg"


def check_outputs(inputs: list[Path], images: list[tuple[Path, Path]], out: Path) -> None:
    """Refuse (before writing anything) an output folder in an input folder, or outputs that collide or overwrite."""
    out_r = out.resolve()
    for item in inputs:
        if item.is_dir() and out_r.is_relative_to(item.resolve()):
            raise DarksegError(f"--out {out}: inside the input folder {item}; the masks would mix with (or overwrite) "
                               "the images: choose an output folder outside it")
    sources = {p.resolve(): p for p, _ in images}
    written: dict[Path, Path] = {}
    for path, rel in images:
        for target in output_paths(rel, out_r):
            if target in sources:
                raise DarksegError(f"--out {out}: would overwrite the input image {sources[target]}; "
                                   "choose another output folder")
            if target in written and written[target] != path:
                raise DarksegError(f"{written[target]} and {path} would both be written to {target}; "
                                   "rename one or segment them separately")
            written[target] = path


def _segment(path: Path, rel: Path, model, args, infer_cfg, device) -> None:  # noqa: ANN001
    import numpy as np
    import torch
    from PIL import Image

    from darkseg.data.io import VOC_PALETTE, find_file, read_depth, read_image, write_palette_png
    from darkseg.engine.inference import labels_from_probs, predict_probs

    rgb = read_image(path)
    x = torch.from_numpy(rgb).permute(2, 0, 1).float().div(255).unsqueeze(0).to(device)
    depth = None
    if args.depth is not None and getattr(model, "uses_depth", False):
        stems = (path.stem, f"{path.stem}_depth")
        dpath = find_file(args.depth / rel.parent, stems, (".png", ".npy")) or find_file(args.depth, stems,
                                                                                           (".png", ".npy"))
        if dpath is None:
            raise DarksegError(f"{args.depth}: no depth map for {path} ({path.stem}.png/_depth.png/.npy)")
        d = read_depth(dpath)
        if d.shape != rgb.shape[:2]:
            raise DarksegError(f"{dpath}: depth size {d.shape[::-1]} differs from {path.name} {rgb.shape[1::-1]}")
        depth = torch.from_numpy(d)[None, None].float().to(device)
    probs = predict_probs(model, x, infer_cfg, depth=depth)
    label = labels_from_probs(probs, x, infer_cfg)[0].cpu().numpy().astype(np.uint8)
    mask_path, overlay_path = output_paths(rel, args.out)
    mask_path.parent.mkdir(parents=True, exist_ok=True)
    write_palette_png(mask_path, label)
    colour = VOC_PALETTE[label]
    overlay = (1 - args.alpha) * rgb + args.alpha * colour
    overlay[label == 0] = rgb[label == 0]
    Image.fromarray(overlay.round().astype(np.uint8)).save(overlay_path, quality=92)


def run(args: argparse.Namespace) -> int:
    cfg = load(args)
    if cfg is None:
        return 0
    import logging

    from tqdm import tqdm

    from darkseg.engine.runner import load_deployed, setup_runtime

    infer_cfg = cfg.eval.inference
    if infer_cfg.class_filter == "gt":
        raise DarksegError("eval.inference.class_filter=gt needs ground-truth labels; use pred or none for infer")
    images = collect_images(args.input)
    check_outputs(args.input, images, args.out)
    device, _ = setup_runtime(cfg)
    model = load_deployed(cfg, args.weights, device)
    if getattr(model, "uses_depth", False) and args.depth is None:
        raise DarksegError("this model is depth-guided: pass --depth DIR with a depth map per image")
    args.out.mkdir(parents=True, exist_ok=True)
    failed: list[str] = []
    for path, rel in tqdm(images, desc="infer", dynamic_ncols=True):
        try:
            _segment(path, rel, model, args, infer_cfg, device)
        except DarksegError as err:
            logging.getLogger(__name__).warning("skipped %s: %s", path, err)
            failed.append(str(path))
    done = len(images) - len(failed)
    print(f"wrote {done} masks and overlays to {args.out}")
    if failed:
        raise DarksegError(f"{len(failed)} of {len(images)} images could not be segmented (reasons above): "
                           + ", ".join(failed[:5]) + (" ..." if len(failed) > 5 else ""))
    return 0
