"""Spatial-holdout scores: confusion matrix, per-class IoU/precision/recall/F1, KL divergence.

Maps are scored against the aligned labels of the held-out areas (and, when a patch
index is given, against the held-out patches of the other areas), pixel by pixel,
ignoring label 255. The scene is read in blocks and only a ``K x K`` confusion matrix
and per-patch KL values are kept, so memory does not grow with the scene.

Conventions (never let a mean hide a class at zero):

* the confusion matrix has the reference (labels) in rows and the prediction in columns;
* every class gets a row in ``per_class_iou.csv``, with its pixel ``support``;
* a class absent from the reference (support 0) has IoU, recall and F1 NaN (undefined)
  and is left out of mIoU and macro F1; its false positives still show in ``predicted``
  and in its precision (0);
* a class present in the reference but never predicted has IoU, recall and F1 0 and
  precision NaN (nothing predicted: undefined), and it counts (as 0) in mIoU;
* pixels where the label is valid but the map is nodata are not in the matrix; they are
  counted as ``unmapped_pixels`` in ``metrics.json``.

The class-proportion KL divergence of a patch is
``KL(y, ŷ) = Σ_i (y_i + ε) log((y_i + ε) / (ŷ_i + ε))`` where ``y`` and ``ŷ`` are the
class proportions of the reference and of the prediction over the patch's scored
pixels; it is averaged over the patches (squares of ``kl_patch`` px on the scene's grid,
edge patches included) that have scored pixels.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
from rasterio.windows import Window

from landcover.classes import IGNORE, ClassMap
from landcover.errors import ConfigError, DataError
from landcover.io import atomic_path, open_raster

log = logging.getLogger(__name__)

BLOCK = 1024
"""Target block side (px) of the streamed reads; rounded to a multiple of the KL patch."""


# --------------------------------------------------------------------------- pure metrics


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
    patch: int = 64,
    eps: float = 1e-8,
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


# --------------------------------------------------------------------------- reading


def map_to_indices(
    values: np.ndarray, tags: Mapping[str, str], nodata: float | None, classes: ClassMap, where: str
) -> np.ndarray:
    """Class indices (uint8, 255 = nodata) of a map's pixel values.

    A map in codes (tag ``values`` = ``codes``, or nodata other than 255 when the tag is
    missing) is mapped back through the class map; a map in indices is returned as is.
    """
    mode = tags.get("values") or ("indices" if nodata == IGNORE else "codes")
    if mode == "indices":
        return values.astype(np.uint8, copy=False)
    return classes.remap(values, nodata=None if nodata is None else int(nodata), where=where)


def _check_same_grid(a: rasterio.DatasetReader, b: rasterio.DatasetReader, area: str) -> None:
    if (a.crs, a.transform, a.shape) != (b.crs, b.transform, b.shape):
        raise DataError(
            f"Area '{area}': the map '{a.name}' ({a.crs}, {a.shape}, {tuple(a.transform)[:6]}) "
            f"is not on the grid of the labels '{b.name}' ({b.crs}, {b.shape}, "
            f"{tuple(b.transform)[:6]}); delete the map and rerun predict_area for it."
        )


def _check_classes(tags: Mapping[str, str], classes: ClassMap, path: str) -> None:
    if "classes" not in tags:
        return
    names = json.loads(tags["classes"])
    if list(names) != list(classes.names):
        raise DataError(
            f"Map '{path}' was made for classes {names} but the config's `classes` are "
            f"{list(classes.names)}; rerun predict_area with the current config."
        )


def blocks(height: int, width: int, side: int) -> Iterator[Window]:
    """Windows of at most ``side x side`` px tiling a scene from its top-left corner."""
    for row in range(0, height, side):
        for col in range(0, width, side):
            yield Window(col, row, min(side, width - col), min(side, height - row))


def _window_mask(win: Window, windows: Sequence[tuple[int, int, int]]) -> np.ndarray:
    """Pixels of ``win`` covered by any of ``windows`` given as (row, col, size)."""
    r0, c0 = int(win.row_off), int(win.col_off)
    h, w = int(win.height), int(win.width)
    mask = np.zeros((h, w), dtype=bool)
    for row, col, size in windows:
        top, left = max(row - r0, 0), max(col - c0, 0)
        bottom, right = min(row + size - r0, h), min(col + size - c0, w)
        if top < bottom and left < right:
            mask[top:bottom, left:right] = True
    return mask


def score_area(
    map_path: str | Path,
    labels_path: str | Path,
    classes: ClassMap,
    *,
    area: str = "",
    windows: Sequence[tuple[int, int, int]] | None = None,
    kl_patch: int = 64,
    kl_eps: float = 1e-8,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Stream one map against its labels.

    Args:
        map_path: the map (codes or indices, see :func:`map_to_indices`).
        labels_path: the aligned labels (class index, 255 = ignore).
        classes: the class map.
        area: the area's name, for messages.
        windows: score only these (row, col, size) windows of the scene (held-out
            patches); ``None`` scores the whole scene.
        kl_patch: side of the KL patches (px).
        kl_eps: ε of the KL divergence.

    Returns:
        (confusion matrix, KL per patch, unmapped pixels: labelled but map nodata).

    """
    k = len(classes)
    side = kl_patch * max(1, BLOCK // kl_patch)
    confusion = np.zeros((k, k), dtype=np.int64)
    kls: list[np.ndarray] = []
    unmapped = 0
    with (
        open_raster(map_path, f"map of area '{area}'") as mds,
        open_raster(labels_path, f"aligned labels of area '{area}'") as lds,
    ):
        _check_same_grid(mds, lds, area)
        tags = mds.tags()
        _check_classes(tags, classes, str(map_path))
        for win in blocks(lds.height, lds.width, side):
            ref = lds.read(1, window=win)
            if windows is not None:
                mask = _window_mask(win, windows)
                if not mask.any():
                    continue
                ref = np.where(mask, ref, IGNORE)
            pred = map_to_indices(
                mds.read(1, window=win), tags, mds.nodata, classes, f"map '{map_path}'"
            )
            confusion += confusion_matrix(ref, pred, k)
            unmapped += int(((ref < k) & (pred >= k)).sum())
            kls.append(patch_kl(ref, pred, k, kl_patch, kl_eps))
    return confusion, np.concatenate(kls) if kls else np.zeros(0), unmapped


def holdout_windows(
    index: str | Path, area: str, splits: Sequence[str] = ("holdout",)
) -> list[tuple[int, int, int]]:
    """(row, col, size) of an area's patches whose ``split`` is in ``splits``."""
    frame = pd.read_parquet(index, columns=["area", "row", "col", "size", "split"])
    rows = frame[(frame["area"] == area) & frame["split"].isin(list(splits))]
    return [(int(r), int(c), int(s)) for r, c, s in rows[["row", "col", "size"]].to_numpy()]


# --------------------------------------------------------------------------- the rule


def _clean(value: object) -> object:
    """JSON-safe: NaN -> None, NumPy scalars -> Python."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def evaluate(
    maps: Sequence[str | Path],
    labels: Sequence[str | Path],
    *,
    out_per_class: str | Path,
    out_metrics: str | Path,
    out_confusion: str | Path,
    classes: Sequence[Mapping[str, object]],
    ignore_codes: Sequence[int] = (),
    areas: Sequence[str] | None = None,
    index: str | Path | None = None,
    holdout: Sequence[str] = (),
    index_splits: Sequence[str] = ("holdout",),
    kl_patch: int = 64,
    kl_eps: float = 1e-8,
    experiment: str = "",
    device: str = "",
) -> dict[str, object]:
    """Score maps against aligned labels and write the evaluation tables (``evaluate`` rule).

    Args:
        maps: map COGs, one per area.
        labels: the aligned labels of the same areas, in the same order.
        out_per_class: ``per_class_iou.csv``: one row per class (``class``, ``index``,
            ``iou``, ``precision``, ``recall``, ``f1``, ``support``, ``predicted``, ``tp``,
            ``fp``, ``fn``); NaN written as ``NaN``.
        out_metrics: ``metrics.json``: headline scores, KL, per-area scores.
        out_confusion: ``confusion.csv``: pixel counts, reference classes in rows
            (first column ``reference``), predicted classes in columns.
        classes: the config's ``classes``.
        ignore_codes: the config's ``ignore_codes``.
        areas: area names of ``maps``; default the maps' file stems.
        index: the patch index (``results/patches/index.parquet``); when given, areas
            not in ``holdout`` are scored on their patches whose split is in
            ``index_splits`` only (held-out blocks).
        holdout: areas scored over the whole scene when ``index`` is given.
        index_splits: splits of the index that count as held out.
        kl_patch: side of the KL patches (px).
        kl_eps: ε of the KL divergence.
        experiment: experiment name, recorded in ``metrics.json``.
        device: device name, recorded in ``metrics.json``.

    Returns:
        The metrics written to ``metrics.json``.

    Raises:
        ConfigError: on mismatched inputs or bad parameters.
        DataError: when a map is not on its labels' grid or holds other classes.

    """
    if len(maps) != len(labels):
        raise ConfigError(
            f"evaluate: {len(maps)} maps but {len(labels)} label files; give one map per area."
        )
    if not maps:
        raise ConfigError(
            "evaluate: no maps to score; list at least one area in the config's `holdout` "
            "(or use a split with held-out blocks)."
        )
    if kl_patch < 1 or kl_eps <= 0:
        raise ConfigError(
            f"evaluate: kl_patch={kl_patch}, kl_eps={kl_eps}; both must be > 0 "
            "(e.g. kl_patch: 64, kl_eps: 1.0e-8)."
        )
    class_map = ClassMap.from_config(classes, ignore_codes)
    names = list(class_map.names)
    area_names = list(areas) if areas is not None else [Path(m).stem for m in maps]
    total = np.zeros((len(names), len(names)), dtype=np.int64)
    kls: list[np.ndarray] = []
    unmapped = 0
    per_area: dict[str, object] = {}
    for area, map_path, labels_path in zip(area_names, maps, labels, strict=True):
        windows = None
        if index is not None and area not in holdout:
            windows = holdout_windows(index, area, index_splits)
        cm, kl, miss = score_area(
            map_path,
            labels_path,
            class_map,
            area=area,
            windows=windows,
            kl_patch=kl_patch,
            kl_eps=kl_eps,
        )
        if cm.sum() == 0:
            log.warning("area %s: no labelled pixels were scored", area)
        total += cm
        kls.append(kl)
        unmapped += miss
        head = summary(cm, names)
        per_area[area] = {
            "scope": "scene" if windows is None else f"{len(windows)} patches",
            "miou": head["miou"],
            "overall_accuracy": head["overall_accuracy"],
            "macro_f1": head["macro_f1"],
            "pixels": head["pixels"],
            "unmapped_pixels": miss,
            "kl_divergence": float(kl.mean()) if kl.size else math.nan,
        }
        log.info("area %s: mIoU %.4f over %d px", area, head["miou"], head["pixels"])
    all_kl = np.concatenate(kls)
    metrics = {
        "experiment": experiment,
        "device": device,
        "areas": area_names,
        "maps": [str(m) for m in maps],
        "classes": names,
        **summary(total, names),
        "unmapped_pixels": unmapped,
        "kl_divergence": float(all_kl.mean()) if all_kl.size else math.nan,
        "kl_patches": int(all_kl.size),
        "kl_patch": kl_patch,
        "kl_eps": kl_eps,
        "per_class_iou": dict(zip(names, class_scores(total)["iou"].tolist(), strict=True)),
        "per_area": per_area,
        "notes": (
            "mIoU and macro F1 average the classes present in the reference; classes absent "
            "from it have NaN (null) IoU/F1. Pixels labelled 255 are ignored."
        ),
    }
    table = per_class_table(total, names)
    confusion = pd.DataFrame(total, index=pd.Index(names, name="reference"), columns=names)
    with atomic_path(out_per_class) as tmp:
        table.to_csv(tmp, index=False, na_rep="NaN", float_format="%.6f")
    with atomic_path(out_confusion) as tmp:
        confusion.to_csv(tmp)
    with atomic_path(out_metrics) as tmp:
        tmp.write_text(json.dumps(_clean(metrics), indent=2) + "\n")
    return metrics


def leaderboard(metrics: Sequence[str | Path], out: str | Path) -> pd.DataFrame:
    """Collect experiments' ``metrics.json`` into one table, best mIoU first.

    Args:
        metrics: ``results/eval/{experiment}/{device}/metrics.json`` files.
        out: CSV with ``rank``, ``experiment``, ``device``, ``miou``,
            ``overall_accuracy``, ``macro_f1``, ``kl_divergence``, ``pixels``.

    Returns:
        The table written.

    """
    rows = []
    for path in metrics:
        try:
            m = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise DataError(
                f"Cannot read metrics '{path}' ({err}); delete it and rerun the evaluate rule."
            ) from err
        parts = Path(path).parts
        rows.append(
            {
                "experiment": m.get("experiment") or (parts[-3] if len(parts) >= 3 else ""),
                "device": m.get("device") or (parts[-2] if len(parts) >= 2 else ""),
                **{
                    key: m.get(key)
                    for key in ("miou", "overall_accuracy", "macro_f1", "kl_divergence", "pixels")
                },
            }
        )
    table = pd.DataFrame(
        rows,
        columns=[
            "experiment",
            "device",
            "miou",
            "overall_accuracy",
            "macro_f1",
            "kl_divergence",
            "pixels",
        ],
    )
    table = table.sort_values("miou", ascending=False, na_position="last", kind="stable")
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False, na_rep="NaN", float_format="%.6f")
    return table
