"""Class proportions of each chip (kind chips): reference and predicted, and their KL.

For chip collections scored by class proportions (a challenge's
``KL(y, ŷ) = Σ_i (y_i + ε) log((y_i + ε) / (ŷ_i + ε))``, :func:`metrics.kl_divergence`):
each chip's proportions are counted over its cell of the area's mosaic
(:mod:`landcover.sources.chips`), over the pixels its reference labels (ignored codes,
no data and clouds weigh 0). A chip without a labelled pixel, and every chip of an area
without labels (``labelled: false``, a test set of images without masks), gets its
predicted proportions over every mapped pixel, NaN reference and KL, and ``scored``
false. The table ends with a ``mean`` row: the mean KL over the scored chips only.
"""

from __future__ import annotations

import json
import math
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
    reference: np.ndarray | None,
    prediction: np.ndarray,
    chip: str,
    path: str,
    names: Sequence[str],
    eps: float,
) -> dict[str, object]:
    """One chip's row: id, file, ``scored``, ``ref_<class>``, ``kl``, ``pred_<class>`` (pure).

    ``reference`` and ``prediction``: the class indices of the chip's cell (255 = none);
    ``reference`` None for a chip of an area without labels. A chip scored (with a
    labelled pixel) has its reference and KL, its prediction counted over the labelled
    pixels; any other has NaN reference and KL, its prediction over every pixel.
    """
    labelled = np.zeros(prediction.shape, bool) if reference is None else reference != IGNORE
    scored = bool(labelled.any())
    y_hat = proportions(prediction[labelled] if scored else prediction, len(names))
    y = proportions(reference, len(names)) if scored else np.full(len(names), np.nan)
    return {
        "chip": chip,
        "file": path,
        "scored": scored,
        **{f"ref_{n}": float(v) for n, v in zip(names, y, strict=True)},
        "kl": float(kl_divergence(y, y_hat, eps)) if scored else math.nan,
        **{f"pred_{n}": float(v) for n, v in zip(names, y_hat, strict=True)},
    }


def cells(chips: Mapping[str, str], size: Sequence[int]) -> list[tuple[str, str, Window]]:
    """Each chip's id, file and cell of the mosaic (row by row, ``ceil(sqrt(n))`` a row)."""
    height, width = int(size[0]), int(size[1])
    columns = layout(len(chips))[1]
    return [
        (chip, path, Window((i % columns) * width, (i // columns) * height, width, height))
        for i, (chip, path) in enumerate(chips.items())
    ]


def chip_rows(
    reference: np.ndarray | None,
    prediction: np.ndarray,
    chips: Mapping[str, str],
    size: Sequence[int],
    names: Sequence[str],
    eps: float,
) -> list[dict[str, object]]:
    """The rows of every chip of a mosaic held in memory (:func:`chip_row`, pure).

    ``reference`` None: a mosaic without labels (every chip unscored).
    """
    rows = []
    for chip, path, cell in cells(chips, size):
        where = cell.toslices()
        truth = None if reference is None else reference[where]
        rows.append(chip_row(truth, prediction[where], chip, path, names, eps))
    return rows


def mean_row(table: pd.DataFrame) -> dict[str, object]:
    """The ``mean`` row: the mean KL over the scored chips only (NaN when none is)."""
    kl = table.loc[table["scored"].astype(bool), "kl"].mean() if len(table) else math.nan
    return {"area": MEAN_ROW, "chip": MEAN_ROW, "kl": kl}


def chip_proportions(
    maps: Sequence[str | Path],
    labels: Sequence[str | Path],
    areas: Sequence[str],
    out: str | Path,
    *,
    classes: Sequence[Mapping[str, object]],
    ignore_codes: Sequence[int],
    eps: float,
    unlabelled: Sequence[str] = (),
    unlabelled_maps: Sequence[str | Path] = (),
    unlabelled_images: Sequence[str | Path] = (),
) -> pd.DataFrame:
    """Write ``proportions.csv``: the chips of the scored and unlabelled areas, ``mean``.

    Every chip of the scored areas, then every chip of the areas without labels
    (unscored: NaN reference and KL), then the ``mean`` row (the mean KL over the scored
    chips only).

    Args:
        maps: the scored areas' maps, in the order of ``areas``.
        labels: their aligned labels (whose tags list the chips).
        areas: the scored areas.
        out: the CSV written.
        classes: the config's ``classes``.
        ignore_codes: the config's ``ignore_codes``.
        eps: the KL's epsilon (``evaluate.kl_eps``).
        unlabelled: the areas without labels (``labelled: false``), mapped only.
        unlabelled_maps: their maps, in the order of ``unlabelled``.
        unlabelled_images: their aligned images (whose tags list the chips).

    Raises:
        DataError: a raster that cannot be read (naming it).

    """
    class_map = ClassMap.from_config(classes, ignore_codes)
    names = list(class_map.names)
    sources = [
        *((area, m, lab, True) for area, m, lab in zip(areas, maps, labels, strict=True)),
        *(
            (area, m, image, False)
            for area, m, image in zip(unlabelled, unlabelled_maps, unlabelled_images, strict=True)
        ),
    ]
    rows = []
    for area, map_path, grid_path, has_labels in sources:
        what = "labels" if has_labels else "aligned image"
        with (
            open_raster(grid_path, f"{what} of area '{area}'") as grid,
            open_raster(map_path, f"map of area '{area}'") as ds,
        ):
            chips, size = json.loads(grid.tags()["chips"]), json.loads(grid.tags()["chip_size"])
            for chip, path, cell in cells(chips, size):  # one chip's window at a time
                values = ds.read(1, window=cell)
                pred = map_to_indices(values, ds.tags(), ds.nodata, class_map, str(map_path))
                truth = grid.read(1, window=cell) if has_labels else None
                rows.append({"area": area, **chip_row(truth, pred, chip, path, names, eps)})
    table = pd.DataFrame(rows)
    table = pd.concat([table, pd.DataFrame([mean_row(table)])], ignore_index=True)
    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False, na_rep="NaN")
    return table
