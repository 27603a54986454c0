"""Pure metrics: confusion matrix, per-class IoU/precision/recall/F1, mIoU, KL divergence.

Conventions (never let a mean hide a class at zero):

* the confusion matrix has the reference (labels) in rows and the prediction in columns;
* every class gets a row in ``per_class_iou.csv``, with its pixel ``support``;
* a class absent from the reference (support 0) has IoU, recall and F1 NaN (undefined)
  and is left out of mIoU and macro F1; its false positives still show in ``predicted``
  and in its precision (0);
* a class present in the reference but never predicted has IoU, recall and F1 0 and
  precision NaN (nothing predicted: undefined), and it counts (as 0) in mIoU.

The class-proportion KL divergence of a patch is
``KL(y, ŷ) = Σ_i (y_i + ε) log((y_i + ε) / (ŷ_i + ε))`` where ``y`` and ``ŷ`` are the
class proportions of the reference and of the prediction over the patch's scored
pixels; it is averaged over the patches that have scored pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd


def confusion_matrix(reference: np.ndarray, prediction: np.ndarray, n_classes: int) -> np.ndarray:
    """Count reference/prediction pairs: ``(K, K)`` int64, reference in rows.

    Pixels whose reference or prediction is not a class index (e.g. 255) are left out.

    Args:
        reference: class indices of the labels (255 = ignore).
        prediction: class indices of the map (255 = nodata).
        n_classes: K.

    Returns:
        The confusion matrix.

    """
    ref = reference.ravel().astype(np.int64)
    pred = prediction.ravel().astype(np.int64)
    ok = (ref < n_classes) & (pred < n_classes) & (ref >= 0) & (pred >= 0)
    counts = np.bincount(ref[ok] * n_classes + pred[ok], minlength=n_classes * n_classes)
    return counts.reshape(n_classes, n_classes)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with NaN where ``den`` is 0."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def class_scores(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class scores of a confusion matrix (reference in rows).

    Returns:
        Arrays of length K: ``tp``, ``fp``, ``fn``, ``support`` (reference pixels),
        ``predicted`` (predicted pixels), ``iou``, ``precision``, ``recall``, ``f1``.
        IoU, recall and F1 are NaN for classes absent from the reference; precision is
        NaN for classes never predicted (see the module's conventions).

    """
    cm = np.asarray(confusion, dtype=np.int64)
    tp = np.diag(cm)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    fp = predicted - tp
    fn = support - tp
    present = support > 0
    iou = np.where(present, _ratio(tp, tp + fp + fn), np.nan)
    f1 = np.where(present, _ratio(2 * tp, 2 * tp + fp + fn), np.nan)
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "support": support,
        "predicted": predicted,
        "iou": iou,
        "precision": _ratio(tp, predicted),
        "recall": _ratio(tp, support),
        "f1": f1,
    }


def mean_iou(confusion: np.ndarray) -> float:
    """Mean IoU over the classes present in the reference (NaN when none is)."""
    iou = class_scores(confusion)["iou"]
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else math.nan


def overall_accuracy(confusion: np.ndarray) -> float:
    """Fraction of scored pixels predicted right (NaN when there are none)."""
    total = int(np.asarray(confusion).sum())
    return float(np.trace(confusion) / total) if total else math.nan


def summary(confusion: np.ndarray, names: Sequence[str]) -> dict[str, object]:
    """Headline scores of a confusion matrix.

    Returns:
        ``miou``, ``macro_f1`` (over classes present in the reference),
        ``overall_accuracy``, ``pixels``, ``classes_scored`` (present in the reference),
        ``classes_absent_from_reference``, ``classes_absent_from_prediction``.

    """
    s = class_scores(confusion)
    present = s["support"] > 0
    return {
        "miou": mean_iou(confusion),
        "macro_f1": float(np.nanmean(s["f1"])) if present.any() else math.nan,
        "overall_accuracy": overall_accuracy(confusion),
        "pixels": int(np.asarray(confusion).sum()),
        "classes_scored": [n for n, p in zip(names, present, strict=True) if p],
        "classes_absent_from_reference": [n for n, p in zip(names, present, strict=True) if not p],
        "classes_absent_from_prediction": [
            n for n, p in zip(names, s["predicted"] > 0, strict=True) if not p
        ],
    }


def per_class_table(confusion: np.ndarray, names: Sequence[str]) -> pd.DataFrame:
    """One row per class, in class index order, with scores and pixel counts."""
    s = class_scores(confusion)
    return pd.DataFrame(
        {
            "class": list(names),
            "index": np.arange(len(names)),
            "iou": s["iou"],
            "precision": s["precision"],
            "recall": s["recall"],
            "f1": s["f1"],
            "support": s["support"],
            "predicted": s["predicted"],
            "tp": s["tp"],
            "fp": s["fp"],
            "fn": s["fn"],
        }
    )


def kl_divergence(y: np.ndarray, y_hat: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """``Σ_i (y_i + ε) log((y_i + ε) / (ŷ_i + ε))`` over the last axis.

    Args:
        y: reference class proportions (``(..., K)``).
        y_hat: predicted class proportions, same shape.
        eps: ε, keeps the log finite when a class is missing.

    Returns:
        KL per leading index (a scalar array for 1-D input).

    """
    y = np.asarray(y, dtype=np.float64) + eps
    y_hat = np.asarray(y_hat, dtype=np.float64) + eps
    return np.sum(y * np.log(y / y_hat), axis=-1)


def patch_counts(
    reference: np.ndarray, prediction: np.ndarray, n_classes: int, patch: int
) -> tuple[np.ndarray, np.ndarray]:
    """Class pixel counts of the reference and of the prediction per patch.

    Patches are ``patch x patch`` squares from the array's top-left corner (the last
    row and column of patches may be smaller). Only pixels where both are class
    indices count.

    Returns:
        Two int64 arrays ``(n_patches, K)``; patches in row-major order.

    """
    h, w = reference.shape
    rows, cols = math.ceil(h / patch), math.ceil(w / patch)
    pid = (np.arange(h)[:, None] // patch) * cols + np.arange(w)[None, :] // patch
    ref = reference.astype(np.int64)
    pred = prediction.astype(np.int64)
    ok = (ref < n_classes) & (pred < n_classes)
    size = rows * cols * n_classes
    ref_counts = np.bincount(pid[ok] * n_classes + ref[ok], minlength=size)
    pred_counts = np.bincount(pid[ok] * n_classes + pred[ok], minlength=size)
    return ref_counts.reshape(-1, n_classes), pred_counts.reshape(-1, n_classes)


def patch_kl(
    reference: np.ndarray,
    prediction: np.ndarray,
    n_classes: int,
    patch: int,
    eps: float,
) -> np.ndarray:
    """KL divergence of the class proportions of each patch that has scored pixels.

    Args:
        reference: class indices of the labels (255 = ignore), ``(h, w)``.
        prediction: class indices of the map (255 = nodata), same shape.
        n_classes: K.
        patch: patch side (px).
        eps: ε of :func:`kl_divergence`.

    Returns:
        float64 array, one value per patch with scored pixels.

    """
    ref_counts, pred_counts = patch_counts(reference, prediction, n_classes, patch)
    n = ref_counts.sum(axis=1)
    keep = n > 0
    y = ref_counts[keep] / n[keep, None]
    y_hat = pred_counts[keep] / n[keep, None]
    return kl_divergence(y, y_hat, eps)
