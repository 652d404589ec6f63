"""Segmentation metrics from one confusion matrix accumulated over a whole split.

Conventions (documented for users in the README):

- Pixels whose ground truth is the ignore index (255) are skipped.
- IoU_c = TP / (TP + FP + FN). A class absent from both the ground truth and the prediction of the whole split
  has an undefined IoU: it is reported as NaN and excluded from the mean (``nanmean``).
- PixAcc = correctly labelled pixels / valid pixels. Mean class accuracy = mean over classes present in the ground
  truth of TP / (TP + FN).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

IGNORE_INDEX = 255


class ConfusionMatrix:
    """Accumulates a C×C confusion matrix (rows = ground truth, columns = prediction)."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.mat = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add a batch of predicted and ground-truth label maps of the same shape."""
        if pred.shape != target.shape:
            raise ValueError(f"prediction shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
        offsets = self.target_offsets(target)
        valid = offsets < self.num_classes**2  # predicted labels of ignored pixels are not checked
        pred = pred.reshape(-1).to("cpu", torch.int64)[valid]
        self._check_predictions(pred)
        self.mat += torch.bincount(offsets[valid] + pred, minlength=self.num_classes**2).view_as(self.mat)

    def target_offsets(self, target: torch.Tensor) -> torch.Tensor:
        """A batch's ground truth prepared once for :meth:`update_from_offsets` of many predictions of it: each
        valid pixel's row offset (label × C), each ignored pixel past the matrix (C × C)."""
        target = target.reshape(-1).to("cpu", torch.int64)
        valid = target != self.ignore_index
        if valid.any() and (int(target[valid].min()) < 0 or int(target[valid].max()) >= self.num_classes):
            raise ValueError(f"ground-truth label outside [0, {self.num_classes}) and not {self.ignore_index}")
        return torch.where(valid, target * self.num_classes, self.num_classes**2)

    def update_from_offsets(self, pred: torch.Tensor, offsets: torch.Tensor) -> None:
        """:meth:`update` with the ground truth given as :meth:`target_offsets` (the same counts): one bincount,
        with ignored pixels counted past the matrix and dropped."""
        pred = pred.reshape(-1).to("cpu", torch.int64)
        if pred.shape != offsets.shape:
            raise ValueError(f"{pred.numel()} predicted pixels for {offsets.numel()} ground-truth pixels")
        self._check_predictions(pred)
        c2 = self.num_classes**2
        self.mat += torch.bincount(offsets + pred, minlength=c2 + self.num_classes)[:c2].view_as(self.mat)

    def _check_predictions(self, pred: torch.Tensor) -> None:
        if pred.numel():
            low, high = torch.aminmax(pred)
            if int(low) < 0 or int(high) >= self.num_classes:
                raise ValueError(f"predicted label outside [0, {self.num_classes})")

    def merge(self, other: torch.Tensor) -> None:
        """Add another confusion matrix (e.g. all-reduced from other ranks)."""
        self.mat += other.to("cpu", torch.int64)

    def compute(self, class_names: tuple[str, ...] | list[str] | None = None) -> SegMetrics:
        return segmentation_metrics(self.mat.numpy(), class_names)


@dataclass(frozen=True)
class SegMetrics:
    """mIoU, PixAcc and mean class accuracy in percent, plus per-class IoU (NaN = class absent)."""

    miou: float
    pixacc: float
    mean_acc: float
    iou: dict[str, float]
    inference: dict | None = None  # inference settings chosen on a validation split, when they were searched

    def to_dict(self) -> dict:
        out = {"miou": self.miou, "pixacc": self.pixacc, "mean_acc": self.mean_acc, "per_class_iou": self.iou}
        return out if self.inference is None else {**out, "inference": self.inference}

    def table(self) -> str:
        """A plain-text per-class IoU table followed by the summary figures."""
        width = max([len(n) for n in self.iou] + [5])
        lines = [f"{'class':<{width}}  IoU (%)"]
        lines += [f"{name:<{width}}  {'n/a' if np.isnan(v) else f'{v:6.2f}'}" for name, v in self.iou.items()]
        lines.append(f"{'mIoU':<{width}}  {self.miou:6.2f}")
        lines.append(f"{'PixAcc':<{width}}  {self.pixacc:6.2f}")
        lines.append(f"{'mAcc':<{width}}  {self.mean_acc:6.2f}")
        return "\n".join(lines)


def segmentation_metrics(mat: np.ndarray, class_names: tuple[str, ...] | list[str] | None = None) -> SegMetrics:
    """Metrics from a confusion matrix (rows = ground truth, columns = prediction)."""
    mat = np.asarray(mat, dtype=np.float64)
    num_classes = mat.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} class names for {num_classes} classes")
    tp = np.diag(mat)
    gt = mat.sum(axis=1)
    pred = mat.sum(axis=0)
    union = gt + pred - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        acc = np.where(gt > 0, tp / gt, np.nan)
    total = mat.sum()
    pixacc = float(tp.sum() / total) if total > 0 else float("nan")
    miou = float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")
    mean_acc = float(np.nanmean(acc)) if np.isfinite(acc).any() else float("nan")
    return SegMetrics(
        miou=100 * miou,
        pixacc=100 * pixacc,
        mean_acc=100 * mean_acc,
        iou={n: float(100 * v) for n, v in zip(names, iou)},
    )
