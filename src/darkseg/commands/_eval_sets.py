"""``darkseg eval --datasets``: one trained model on several test sets; Dark Zurich test as server PNGs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from darkseg.errors import ConfigError


def resolve(token: str, default_split: str) -> tuple[str, str]:
    """``name:split``, ``<name>_<split>`` (longest registered name first) or a bare ``name`` (``default_split``)."""
    from darkseg.data.registry import DATASETS

    if ":" in token:
        name, split = token.split(":", 1)
        DATASETS.get(name, "--datasets")
        return name, split
    if token in DATASETS:
        return token, default_split
    for name in sorted(DATASETS.names(), key=len, reverse=True):
        if token.startswith(name + "_"):
            return name, token[len(name) + 1:]
    DATASETS.get(token, "--datasets")  # raises, listing the registered names
    raise AssertionError


def data_config(cfg: Any, name: str) -> Any:
    """The training data config pointed at dataset ``name`` (root from ``data.roots``, else data/<name>)."""
    from darkseg.data.registry import class_names

    default = cfg.data.root if name == cfg.data.dataset else f"data/{name}"
    data = cfg.data.model_copy(update={"dataset": name, "root": cfg.data.roots.get(name, default)})
    if tuple(class_names(data)) != tuple(class_names(cfg.data)):
        raise ConfigError(f"--datasets {name}: its classes differ from the model's ({len(class_names(cfg.data))} "
                          f"classes of {cfg.data.dataset}); evaluate on datasets with the same classes")
    return data


def evaluate_sets(cfg: Any, weights: Path | None, tokens: list[str], split: str, predictions: Path | None,
                  progress: bool) -> dict[str, Any]:
    """Metrics per dataset (``{token: metrics dict}``); unlabelled splits are written as predictions instead."""
    from darkseg.engine.runner import evaluate_config

    results: dict[str, Any] = {}
    for token in tokens:
        name, part = resolve(token, split)
        data = data_config(cfg, name)
        if not _labelled(data, part):
            if predictions is None:
                raise ConfigError(f"--datasets {token}: split {part!r} has no ground truth; pass --predictions DIR "
                                  "to write the server's prediction files")
            results[token] = {"predictions": str(write_predictions(cfg, weights, data, part, predictions / token))}
            continue
        cfg.eval.data = data
        results[token] = evaluate_config(cfg, weights, part, progress=progress).to_dict()
    return results


def _labelled(data: Any, split: str) -> bool:
    from darkseg.data.registry import build_dataset

    probe = build_dataset(data, split, ("image",))
    return "mask" in getattr(probe, "available", ("mask",))


def write_predictions(cfg: Any, weights: Path | None, data: Any, split: str, out: Path) -> Path:
    """Predicted train-id maps of an unlabelled split at the images' size, in the Dark Zurich server layout."""
    import torch

    from darkseg.data.dark_zurich import write_submission
    from darkseg.data.registry import build_dataset
    from darkseg.data.transforms import EvalTransform
    from darkseg.engine.inference import final_labels, predict_probs, reweight_probs
    from darkseg.engine.runner import eval_data, input_view_of, load_deployed, setup_runtime

    device, _ = setup_runtime(cfg)
    model = load_deployed(cfg, weights, device)
    inference, view = cfg.eval.inference, input_view_of(cfg)
    data, static_ids = eval_data(data, inference)
    pair = ("day", "flow") if inference.day_pair.enabled else ()
    dataset = build_dataset(data, split, (view, *pair), EvalTransform())
    for index in range(len(dataset)):
        sample = dataset[index]
        image = sample[view][None].to(device)
        probs = predict_probs(model, image, inference)
        confidence = reweight_probs(probs, inference)[0].max(0)[0]
        day_pair = (sample["day"][None].to(device), sample["flow"][None].to(device)) if pair else None
        labels = final_labels(model, probs, image, inference, day_pair, static_ids)[0]
        name = dataset.entries[index].image.name  # type: ignore[attr-defined]
        write_submission(out, name, labels.to(torch.uint8).cpu().numpy(), confidence.cpu().numpy())
    return out
