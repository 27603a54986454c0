"""Class proportions of each chip (kind chips): reference and predicted, and their KL.

For chip collections scored by class proportions (a challenge's
``KL(y, ŷ) = Σ_i (y_i + ε) log((y_i + ε) / (ŷ_i + ε))``, :func:`metrics.kl_divergence`):
each chip's proportions are counted over its cell of the area's mosaic
(:mod:`landcover.sources.chips`), over the pixels its reference labels (ignored codes,
no data and clouds weigh 0); a chip without a labelled pixel (a test chip) gets its
predicted proportions over every mapped pixel and no reference nor KL. The table ends
with a ``mean`` row (the mean KL over the chips that have one).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from rasterio.windows import Window

from landcover.classes import IGNORE, ClassMap
from landcover.evaluation.metrics import kl_divergence
from landcover.evaluation.scoring import map_to_indices
from landcover.io import atomic_path, open_raster
from landcover.sources.chips import layout

MEAN_ROW = "mean"


def proportions(values: np.ndarray, n_classes: int) -> np.ndarray:
    """Share of each class index among ``values`` (255 left out; zeros when empty, pure)."""
    counts = np.bincount(values[values != IGNORE].ravel(), minlength=n_classes)[:n_classes]
    total = counts.sum()
    return counts / total if total else counts.astype(np.float64)


def chip_row(
    reference: np.ndarray,
    prediction: np.ndarray,
    chip: str,
    path: str,
    names: Sequence[str],
    eps: float,
) -> dict[str, object]:
    """One chip's row: id, file, ``ref_<class>``, ``pred_<class>``, ``kl`` (pure).

    ``reference`` and ``prediction``: the class indices of the chip's cell (255 = none).
    """
    labelled = reference != IGNORE
    y_hat = proportions(prediction[labelled] if labelled.any() else prediction, len(names))
    row: dict[str, object] = {"chip": chip, "file": path}
    if labelled.any():
        y = proportions(reference, len(names))
        row |= {f"ref_{n}": float(v) for n, v in zip(names, y, strict=True)}
        row["kl"] = float(kl_divergence(y, y_hat, eps))
    return row | {f"pred_{n}": float(v) for n, v in zip(names, y_hat, strict=True)}


def cells(chips: Mapping[str, str], size: Sequence[int]) -> list[tuple[str, str, Window]]:
    """Each chip's id, file and cell of the mosaic (row by row, ``ceil(sqrt(n))`` a row)."""
    height, width = int(size[0]), int(size[1])
    columns = layout(len(chips))[1]
    return [
        (chip, path, Window((i % columns) * width, (i // columns) * height, width, height))
        for i, (chip, path) in enumerate(chips.items())
    ]


def chip_rows(
    reference: np.ndarray,
    prediction: np.ndarray,
    chips: Mapping[str, str],
    size: Sequence[int],
    names: Sequence[str],
    eps: float,
) -> list[dict[str, object]]:
    """The rows of every chip of a mosaic held in memory (:func:`chip_row`, pure)."""
    rows = []
    for chip, path, cell in cells(chips, size):
        where = cell.toslices()
        rows.append(chip_row(reference[where], prediction[where], chip, path, names, eps))
    return rows


def chip_proportions(
    maps: Sequence[str | Path],
    labels: Sequence[str | Path],
    areas: Sequence[str],
    out: str | Path,
    *,
    classes: Sequence[Mapping[str, object]],
    ignore_codes: Sequence[int],
    eps: float,
) -> pd.DataFrame:
    """Write ``proportions.csv``: every chip of the scored areas, then the ``mean`` row.

    Raises:
        DataError: a raster that cannot be read (naming it).

    """
    class_map = ClassMap.from_config(classes, ignore_codes)
    names = list(class_map.names)
    rows = []
    for area, map_path, label_path in zip(areas, maps, labels, strict=True):
        with (
            open_raster(label_path, f"labels of area '{area}'") as lab,
            open_raster(map_path, f"map of area '{area}'") as ds,
        ):
            chips, size = json.loads(lab.tags()["chips"]), json.loads(lab.tags()["chip_size"])
            for chip, path, cell in cells(chips, size):  # one chip's window at a time
                values = ds.read(1, window=cell)
                pred = map_to_indices(values, ds.tags(), ds.nodata, class_map, str(map_path))
                row = chip_row(lab.read(1, window=cell), pred, chip, path, names, eps)
                rows.append({"area": area, **row})
    table = pd.DataFrame(rows)
    mean = {"area": MEAN_ROW, "chip": MEAN_ROW, "kl": table.get("kl", pd.Series()).mean()}
    table = pd.concat([table, pd.DataFrame([mean])], ignore_index=True)
    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False, na_rep="NaN")
    return table
