"""Scoring maps on the spatial holdout: streamed reads, one confusion matrix, the eval files.

Maps are scored against the aligned labels of the held-out areas (and, when a patch
index is given, against the held-out patches of the other areas), pixel by pixel,
ignoring label 255. The scene is read in blocks and only a ``K x K`` confusion matrix
and per-patch KL values are kept, so memory does not grow with the scene. Pixels where
the label is valid but the map is nodata are not in the matrix; they are counted as
``unmapped_pixels`` in ``metrics.json``. KL patches are squares of ``kl_patch`` px on
the scene's grid, edge patches included.
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
from landcover.evaluation.metrics import (
    class_scores,
    confusion_matrix,
    patch_kl,
    per_class_table,
    summary,
)
from landcover.io import atomic_path, open_raster

log = logging.getLogger(__name__)


BLOCK = 1024
"""Target block side (px) of the streamed reads; rounded to a multiple of the KL patch."""


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
    kl_patch: int,
    kl_eps: float,
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
    kl_patch: int,
    kl_eps: float,
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
    _check_inputs(maps, labels, kl_patch, kl_eps)
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
        total += cm
        kls.append(kl)
        unmapped += miss
        per_area[area] = _area_scores(area, cm, kl, miss, names, windows)
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
    _write(total, names, metrics, out_per_class, out_confusion, out_metrics)
    return metrics


def _check_inputs(
    maps: Sequence[str | Path], labels: Sequence[str | Path], kl_patch: int, kl_eps: float
) -> None:
    """One label file per map, at least one map, usable KL settings.

    Raises:
        ConfigError: naming the fix.

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


def _area_scores(
    area: str,
    cm: np.ndarray,
    kl: np.ndarray,
    unmapped: int,
    names: list[str],
    windows: Sequence[tuple[int, int, int]] | None,
) -> dict[str, object]:
    """One area's headline scores (the ``per_area`` entry of ``metrics.json``)."""
    if cm.sum() == 0:
        log.warning("area %s: no labelled pixels were scored", area)
    head = summary(cm, names)
    log.info("area %s: mIoU %.4f over %d px", area, head["miou"], head["pixels"])
    return {
        "scope": "scene" if windows is None else f"{len(windows)} patches",
        "miou": head["miou"],
        "overall_accuracy": head["overall_accuracy"],
        "macro_f1": head["macro_f1"],
        "pixels": head["pixels"],
        "unmapped_pixels": unmapped,
        "kl_divergence": float(kl.mean()) if kl.size else math.nan,
    }


def _write(
    total: np.ndarray,
    names: list[str],
    metrics: dict[str, object],
    out_per_class: str | Path,
    out_confusion: str | Path,
    out_metrics: str | Path,
) -> None:
    """Write the per-class table, the confusion matrix and metrics.json, atomically."""
    table = per_class_table(total, names)
    confusion = pd.DataFrame(total, index=pd.Index(names, name="reference"), columns=names)
    with atomic_path(out_per_class) as tmp:
        table.to_csv(tmp, index=False, na_rep="NaN", float_format="%.6f")
    with atomic_path(out_confusion) as tmp:
        confusion.to_csv(tmp)
    with atomic_path(out_metrics) as tmp:
        tmp.write_text(json.dumps(_clean(metrics), indent=2) + "\n")
