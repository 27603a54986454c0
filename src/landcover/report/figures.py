"""Figures of the report: maps side by side, per-class IoU, learning curves, confusion, leaderboard.

Each function reads paths (rasters at a decimated resolution so that plotting stays
bounded, or small CSV tables), draws with Matplotlib's object-oriented API (an Agg
canvas: no display, no global pyplot state) and writes one PNG atomically. Figure
sizes are fixed by ``size`` (inches) and ``dpi``, so the PNG is ``size * dpi`` pixels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from rasterio.enums import Resampling

from landcover.classes import ClassMap
from landcover.errors import DataError
from landcover.evaluation.scoring import map_to_indices
from landcover.io import atomic_path, open_raster, read_table

TRUE_COLOUR = ("B04", "B03", "B02")
"""Bands shown as red, green and blue."""

METRIC_LABELS = {
    "miou": "mIoU",
    "overall_accuracy": "overall accuracy",
    "macro_f1": "macro F1",
    "kl_divergence": "KL divergence",
}
"""Axis labels of the leaderboard's metrics."""

NO_DATA_COLOUR = "#dddddd"
"""Background shown where labels are ignored or the map / image has no data."""


# --------------------------------------------------------------------------- pure helpers


def stretch(bands: np.ndarray, low: float = 2.0, high: float = 98.0) -> np.ndarray:
    """Percentile-stretch ``(3, h, w)`` reflectance to an RGBA image ``(h, w, 4)`` in [0, 1].

    Each band is scaled so that its ``low`` and ``high`` percentiles (over finite
    pixels) map to 0 and 1; pixels with any NaN band are transparent.
    """
    rgb = np.zeros((*bands.shape[1:], 4), dtype=np.float32)
    finite = np.isfinite(bands).all(axis=0)
    for i, band in enumerate(bands[:3]):
        values = band[finite]
        if values.size == 0:
            continue
        lo, hi = np.percentile(values, [low, high])
        scaled = (band - lo) / (hi - lo) if hi > lo else np.zeros_like(band)
        rgb[..., i] = np.clip(np.nan_to_num(scaled), 0, 1)
    rgb[..., 3] = finite
    return rgb


def class_cmap(classes: ClassMap) -> tuple[ListedColormap, BoundaryNorm]:
    """Build a colour map of class indices; indices >= K (255) get the no-data colour."""
    cmap = ListedColormap(list(classes.colours), name="classes").with_extremes(
        bad=NO_DATA_COLOUR, over=NO_DATA_COLOUR
    )
    norm = BoundaryNorm(np.arange(len(classes) + 1) - 0.5, len(classes))
    return cmap, norm


def decimation(shape: tuple[int, int], max_size: int) -> tuple[int, int]:
    """Shape of a read whose longer side is at most ``max_size`` (integer decimation)."""
    factor = max(1, math.ceil(max(shape) / max_size))
    return (math.ceil(shape[0] / factor), math.ceil(shape[1] / factor))


def _save(fig: Figure, out: str | Path, dpi: int) -> None:
    FigureCanvasAgg(fig)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)


# --------------------------------------------------------------------------- rasters


def view_bands(names: Sequence[str | None]) -> list[int]:
    """1-based bands of an image shown as red, green, blue (pure).

    B04, B03, B02 when the image has them (true colour); otherwise its first three bands,
    or its first band as grey (any imagery a local source brings).
    """
    if all(band in names for band in TRUE_COLOUR):
        return [list(names).index(band) + 1 for band in TRUE_COLOUR]
    return [1, 2, 3] if len(names) >= 3 else [1, 1, 1]


def read_true_colour(path: str | Path, max_size: int = 1024) -> tuple[np.ndarray, str]:
    """The image's colour view, decimated (average), as ``(3, h, w)`` float32 and its title.

    True colour (B04, B03, B02) when the bands are there, else :func:`view_bands`'s.
    """
    with open_raster(path, "aligned image") as ds:
        names = list(ds.descriptions)
        indexes = view_bands(names)
        shape = decimation(ds.shape, max_size)
        data = ds.read(
            indexes, out_shape=(3, *shape), resampling=Resampling.average, out_dtype="float32"
        )
    shown = ", ".join(dict.fromkeys(str(names[i - 1] or f"band {i}") for i in indexes))
    title = "True colour" if shown == ", ".join(TRUE_COLOUR) else "Image"
    return data, f"{title} ({shown})"


def read_classes(path: str | Path, classes: ClassMap, max_size: int = 1024) -> np.ndarray:
    """Class indices (255 = none) of labels or a map (codes or indices), decimated (nearest)."""
    with open_raster(path, "class raster") as ds:
        shape = decimation(ds.shape, max_size)
        values = ds.read(1, out_shape=shape, resampling=Resampling.nearest)
        return map_to_indices(values, ds.tags(), ds.nodata, classes, f"'{path}'")


def read_count(path: str | Path, max_size: int = 1024) -> np.ndarray:
    """A per-pixel count raster (``clear_count.tif``), decimated (nearest)."""
    with open_raster(path, "clear-look count") as ds:
        return ds.read(1, out_shape=decimation(ds.shape, max_size), resampling=Resampling.nearest)


# --------------------------------------------------------------------------- figures


def plot_area(
    image: str | Path,
    labels: str | Path | None,
    prediction: str | Path,
    out: str | Path,
    *,
    classes: Sequence[Mapping[str, object]],
    ignore_codes: Sequence[int] = (),
    title: str = "",
    clear_count: str | Path | None = None,
    max_size: int = 1024,
    size: tuple[float, float] | None = None,
    dpi: int = 100,
) -> None:
    """Plot true colour, ground truth and prediction of an area side by side, one legend.

    With ``clear_count`` (the composite's clear looks per pixel, kinds stac and demo) a
    fourth panel shows where the composite saw the ground clear how often. An area without
    labels (``labels`` None) has no ground-truth panel, and the title says so.

    Args:
        image: the aligned image (bands described B02..., or any bands: see
            :func:`view_bands`).
        labels: the aligned labels (class indices, 255 ignored); None for an area
            without labels (``labelled: false``).
        prediction: the map (codes or indices; its ``values`` tag tells).
        out: PNG path.
        classes: the config's ``classes`` (names and colours).
        ignore_codes: the config's ``ignore_codes``.
        title: figure title, e.g. the area and experiment.
        clear_count: optional ``clear_count.tif`` beside the raw imagery.
        max_size: longest side (px) the rasters are read at.
        size: figure size in inches; default 15 wide and as tall as the scene's aspect
            needs (between 4 and 12).
        dpi: dots per inch.

    """
    class_map = ClassMap.from_config(classes, ignore_codes)
    view, view_title = read_true_colour(image, max_size)
    rgb = stretch(view)
    pred = read_classes(prediction, class_map, max_size)
    cmap, norm = class_cmap(class_map)
    if size is None:
        aspect = pred.shape[0] / max(pred.shape[1], 1)
        size = (15.0, min(max(5.0 * aspect * 1.05 + 1.6, 4.0), 12.0))
    fig = Figure(figsize=size)
    panels = [(view_title, rgb)]
    if labels is not None:
        panels.append(("Ground truth", read_classes(labels, class_map, max_size)))
    else:  # an area mapped only: say why the reference is missing
        title = f"{title} (no labels: mapped, not scored)" if title else "No labels: not scored"
    panels.append(("Prediction", pred))
    if clear_count is not None:
        panels.append(("Clear looks (composite)", read_count(clear_count, max_size)))
    axes = fig.subplots(1, len(panels))
    for ax, (name, data) in zip(axes, panels, strict=True):
        ax.set_facecolor(NO_DATA_COLOUR)
        if name.startswith("Clear looks"):
            shown = ax.imshow(data, cmap="viridis", vmin=0, interpolation="nearest")
            fig.colorbar(shown, ax=ax, shrink=0.6, label="acquisitions with a clear look")
        elif data.ndim == 3:
            ax.imshow(data, interpolation="nearest")
        else:
            masked = np.ma.masked_greater_equal(data, len(class_map))
            ax.imshow(masked, cmap=cmap, norm=norm, interpolation="nearest")
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [
        Patch(facecolor=c, edgecolor="black", linewidth=0.5, label=n)
        for n, c in zip(class_map.names, class_map.colours, strict=True)
    ]
    handles.append(
        Patch(facecolor=NO_DATA_COLOUR, edgecolor="black", linewidth=0.5, label="no data / ignored")
    )
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), frameon=False)
    if title:
        fig.suptitle(title)
    inch = 1 / size[1]  # keep ~0.8 in for the legend and ~0.8 in for the titles
    fig.subplots_adjust(left=0.01, right=0.99, top=1 - 0.8 * inch, bottom=0.8 * inch, wspace=0.04)
    _save(fig, out, dpi)


def plot_iou(
    per_class: str | Path,
    out: str | Path,
    *,
    classes: Sequence[Mapping[str, object]] | None = None,
    title: str = "",
    size: tuple[float, float] = (8.0, 5.0),
    dpi: int = 100,
) -> None:
    """Bar chart of per-class IoU from ``per_class_iou.csv``, with the mIoU line.

    Classes absent from the reference (IoU NaN) keep their row, marked as such.

    Args:
        per_class: the CSV written by :func:`landcover.evaluation.scoring.evaluate`.
        out: PNG path.
        classes: the config's ``classes`` for the bar colours (grey without).
        title: figure title.
        size: figure size in inches.
        dpi: dots per inch.

    """
    table = read_table(per_class, "per-class table", ["class", "iou", "support"])
    colours = {str(c["name"]): str(c["colour"]) for c in classes or []}
    names = table["class"].astype(str).tolist()
    iou = table["iou"].to_numpy(dtype=float)
    y = np.arange(len(names))[::-1]
    fig = Figure(figsize=size)
    ax = fig.subplots()
    ax.barh(
        y,
        np.nan_to_num(iou),
        color=[colours.get(n, "#888888") for n in names],
        edgecolor="black",
        linewidth=0.5,
    )
    for yi, value, support in zip(y, iou, table["support"], strict=True):
        text = f"{value:.2f}  (n={int(support):,})" if np.isfinite(value) else "not in reference"
        ax.text(min(np.nan_to_num(value), 1.0) + 0.01, yi, text, va="center", fontsize=8)
    present = np.isfinite(iou)
    if present.any():
        miou = float(iou[present].mean())
        ax.axvline(miou, color="black", linestyle="--", linewidth=1, label=f"mIoU {miou:.3f}")
        ax.legend(loc="lower right")
    ax.set_yticks(y, names)
    ax.set_xlim(0, 1.25)
    ax.set_xlabel("IoU")
    ax.set_title(title or "Per-class IoU")
    fig.subplots_adjust(left=0.2, right=0.97, top=0.92, bottom=0.1)
    _save(fig, out, dpi)


def plot_learning_curves(
    history: str | Path,
    out: str | Path,
    *,
    title: str = "",
    size: tuple[float, float] = (11.0, 4.5),
    dpi: int = 100,
) -> None:
    """Loss (train and validation) and validation mIoU per epoch from ``history.csv``.

    Columns ``epoch``, ``train_loss``, ``val_loss`` and ``val_miou`` are required;
    ``train_miou`` is drawn when present. The best epoch (highest ``val_miou``) is marked.

    Args:
        history: the training history CSV.
        out: PNG path.
        title: figure title.
        size: figure size in inches.
        dpi: dots per inch.

    """
    frame = read_table(history, "training history", ["epoch", "train_loss", "val_loss", "val_miou"])
    fig = Figure(figsize=size)
    loss_ax, miou_ax = fig.subplots(1, 2)
    epoch = frame["epoch"]
    loss_ax.plot(epoch, frame["train_loss"], marker=".", label="train")
    loss_ax.plot(epoch, frame["val_loss"], marker=".", label="validation")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("loss")
    loss_ax.set_title("Loss")
    loss_ax.legend()
    if "train_miou" in frame:
        miou_ax.plot(epoch, frame["train_miou"], marker=".", label="train")
    miou_ax.plot(epoch, frame["val_miou"], marker=".", label="validation")
    if frame["val_miou"].notna().any():
        best = frame.loc[frame["val_miou"].idxmax()]
        for ax in (loss_ax, miou_ax):
            ax.axvline(best["epoch"], color="grey", linestyle=":", linewidth=1)
        miou_ax.annotate(
            f"best {best['val_miou']:.3f} (epoch {int(best['epoch'])})",
            (best["epoch"], best["val_miou"]),
            textcoords="offset points",
            xytext=(5, -15),
            fontsize=8,
        )
    miou_ax.set_xlabel("epoch")
    miou_ax.set_ylabel("mIoU")
    miou_ax.set_ylim(0, 1)
    miou_ax.set_title("mIoU")
    miou_ax.legend(loc="lower right")
    if title:
        fig.suptitle(title)
    fig.subplots_adjust(left=0.07, right=0.98, top=0.85, bottom=0.13, wspace=0.25)
    _save(fig, out, dpi)


def normalise_rows(confusion: np.ndarray) -> np.ndarray:
    """Row-normalise a confusion matrix (recall per reference class); NaN rows when empty."""
    cm = np.asarray(confusion, dtype=np.float64)
    support = cm.sum(axis=1, keepdims=True)
    out = np.full(cm.shape, np.nan)
    np.divide(cm, support, out=out, where=support > 0)
    return out


def plot_confusion(
    confusion: str | Path,
    out: str | Path,
    *,
    title: str = "",
    size: tuple[float, float] = (8.0, 7.0),
    dpi: int = 100,
) -> None:
    """Row-normalised confusion matrix from ``confusion.csv`` (reference in rows).

    Rows of classes absent from the reference are grey.

    Args:
        confusion: the CSV written by :func:`landcover.evaluation.scoring.evaluate`.
        out: PNG path.
        title: figure title.
        size: figure size in inches.
        dpi: dots per inch.

    """
    frame = read_table(confusion, "confusion matrix", [], index_col=0)
    names = [str(n) for n in frame.index]
    if list(map(str, frame.columns)) != names:
        raise DataError(
            f"Confusion matrix '{confusion}' is not square over the same classes; rerun evaluate."
        )
    norm = normalise_rows(frame.to_numpy())
    fig = Figure(figsize=size)
    ax = fig.subplots()
    cmap = colormaps["Blues"].with_extremes(bad=NO_DATA_COLOUR)
    image = ax.imshow(np.ma.masked_invalid(norm), cmap=cmap, vmin=0, vmax=1)
    if len(names) <= 15:
        for (i, j), value in np.ndenumerate(norm):
            if np.isfinite(value) and value >= 0.005:
                ax.text(
                    j,
                    i,
                    f"{value:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if value > 0.6 else "black",
                )
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    absent = ~np.isfinite(norm).all(axis=1)
    rows = [f"{n}\n(not in reference)" if a else n for n, a in zip(names, absent, strict=True)]
    ax.set_yticks(range(len(names)), rows)
    ax.set_xlabel("predicted")
    ax.set_ylabel("reference")
    ax.set_title(title or "Confusion matrix (rows normalised: recall)")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of reference pixels")
    fig.subplots_adjust(left=0.16, right=0.88, top=0.93, bottom=0.2)
    _save(fig, out, dpi)


def plot_leaderboard(
    leaderboard: str | Path,
    out: str | Path,
    *,
    metric: str = "miou",
    title: str = "",
    size: tuple[float, float] = (8.0, 4.5),
    dpi: int = 100,
) -> None:
    """Experiments ranked by ``metric`` from the leaderboard CSV, best on top.

    Args:
        leaderboard: CSV with ``experiment``, ``device`` and the ``metric`` column
            (:func:`landcover.evaluation.tables.leaderboard`).
        out: PNG path.
        metric: the column to rank by (higher is better).
        title: figure title.
        size: figure size in inches.
        dpi: dots per inch.

    """
    frame = read_table(leaderboard, "leaderboard", ["experiment", "device", metric])
    frame = frame.sort_values(metric, ascending=True, na_position="first", kind="stable")
    labels = (frame["experiment"].astype(str) + " / " + frame["device"].astype(str)).tolist()
    values = frame[metric].to_numpy(dtype=float)
    fig = Figure(figsize=size)
    ax = fig.subplots()
    y = np.arange(len(labels))
    ax.barh(y, np.nan_to_num(values), color="#4c72b0")
    for yi, value in zip(y, values, strict=True):
        ax.text(
            np.nan_to_num(value) + 0.01,
            yi,
            f"{value:.3f}" if np.isfinite(value) else "n/a",
            va="center",
            fontsize=8,
        )
    ax.set_yticks(y, labels)
    ax.set_xlim(0, max(1.0, float(np.nanmax(values, initial=0)) * 1.15))
    label = METRIC_LABELS.get(metric, metric)
    ax.set_xlabel(label)
    ax.set_title(title or f"Experiments by {label}")
    fig.subplots_adjust(left=0.3, right=0.97, top=0.9, bottom=0.13)
    _save(fig, out, dpi)
