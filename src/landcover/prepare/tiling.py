"""Cut an aligned area into square patches: the area's .npy store and a GeoParquet index."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import shapely
from rasterio.windows import Window

from landcover.classes import IGNORE
from landcover.errors import ConfigError, DataError
from landcover.io import atomic_path, gdal_env, open_raster
from landcover.prepare.store import DTYPES, NpyWriter, to_store_dtype

log = logging.getLogger(__name__)

PathLike = str | Path


def window_offsets(length: int, size: int, stride: int) -> list[int]:
    """Start offsets of windows of ``size`` every ``stride`` px that cover ``[0, length)``.

    The last window is shifted back to end exactly at ``length`` so the edge is
    covered without padding (it then overlaps its neighbour).

    >>> window_offsets(50, 16, 16)
    [0, 16, 32, 34]

    Raises:
        ValueError: when ``size > length`` or ``size``/``stride`` is not positive.

    """
    if size <= 0 or stride <= 0:
        raise ValueError(f"size and stride must be positive, got {size} and {stride}")
    if size > length:
        raise ValueError(f"window of {size} px does not fit in {length} px")
    offsets = list(range(0, length - size + 1, stride))
    if offsets[-1] != length - size:
        offsets.append(length - size)
    return offsets


def patch_windows(height: int, width: int, size: int, stride: int) -> list[tuple[int, int]]:
    """``(row, col)`` offsets of the patches covering a ``height`` x ``width`` grid, row-major."""
    rows = window_offsets(height, size, stride)
    cols = window_offsets(width, size, stride)
    return [(r, c) for r in rows for c in cols]


def chip_patch_windows(
    height: int, width: int, cell: tuple[int, int], size: int, stride: int
) -> list[tuple[int, int]]:
    """The patches of a mosaic of chips (cells of ``cell`` px), each inside one chip, row-major.

    Chips laid side by side are unrelated images: a patch across two would teach the
    network a border that exists nowhere. Each cell is tiled as its own grid.
    """
    rows = [
        r + dr for r in range(0, height, cell[0]) for dr in window_offsets(cell[0], size, stride)
    ]
    cols = [
        c + dc for c in range(0, width, cell[1]) for dc in window_offsets(cell[1], size, stride)
    ]
    return [(r, c) for r in rows for c in cols]


def valid_mask(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Pixels with a class label and a finite value in every band.

    Args:
        image: ``(C, H, W)`` reflectance.
        labels: ``(H, W)`` class indices, 255 = ignore.

    """
    return (labels != IGNORE) & np.isfinite(image).all(axis=0)


def class_counts(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Pixel count per class index ``0..n_classes-1`` (int64); 255 is not counted."""
    counts = np.bincount(labels[labels != IGNORE].ravel(), minlength=n_classes)
    return counts[:n_classes].astype(np.int64)


def tile_area(
    area: str,
    image: PathLike,
    labels: PathLike,
    out_images: PathLike,
    out_labels: PathLike,
    out_index: PathLike,
    size: int,
    stride: int,
    min_valid: float,
    class_names: Sequence[str],
    dtype: str,
) -> gpd.GeoDataFrame:
    """Cut an aligned area into ``size`` x ``size`` patches every ``stride`` px.

    Windows cover the whole area, the right and bottom edges included (the last
    window of a row or column is shifted to end at the edge). A pixel is valid
    when it has a class label and every band is finite; patches whose valid
    fraction is below ``min_valid`` are dropped. Stored labels are 255 wherever
    the pixel is not valid.

    The patches are windows of the area's store (:mod:`landcover.prepare.store`): the
    area's pixels once, whatever the stride. The area is read one strip at a time
    (twice: once to choose the patches, once to write the store), so memory stays
    bounded by one strip.

    Args:
        area: the area's name (messages and the ``area`` column).
        image: aligned float32 image (NaN nodata).
        labels: aligned uint8 labels (255 ignore).
        out_images: ``images.npy``, ``(H, W, C)`` in ``dtype``, NaN where no data.
        out_labels: ``labels.npy``, uint8 ``(H, W)``, 255 where a pixel is not valid.
        out_index: ``index.parquet``, GeoParquet, footprints in the area CRS, columns
            ``area, patch, row, col, size, valid_fraction, count_<name>...``.
        size: patch side in px.
        stride: step between windows in px.
        min_valid: minimum valid fraction of a kept patch, in [0, 1].
        class_names: class names in index order (for the ``count_<name>`` columns).
        dtype: ``patches.dtype`` of ``images.npy`` (``float16`` or ``float32``).

    Returns:
        The index of the kept patches.

    Raises:
        ConfigError: non-positive ``size``/``stride`` or ``min_valid`` outside [0, 1].
        DataError: image and labels on different grids, labels made with another class
            list, a patch larger than the area, or no patch kept.

    """
    if size <= 0 or stride <= 0:
        raise ConfigError(
            f"patches: size ({size}) and stride ({stride}) must be positive integers; "
            "fix `patches.size` / `patches.stride`."
        )
    if not 0 <= min_valid <= 1:
        raise ConfigError(f"patches.min_valid must lie in [0, 1], got {min_valid}.")
    if dtype not in DTYPES:
        raise ConfigError(f"patches.dtype must be one of {list(DTYPES)}, got {dtype!r}.")
    names = list(class_names)
    with (
        # GDAL's block cache bounded as while mapping: it would grow with the area
        rasterio.Env(**gdal_env(1)),
        open_raster(image, f"aligned image of area '{area}'") as img,
        open_raster(labels, f"aligned labels of area '{area}'") as lab,
    ):
        _check_inputs(area, img, lab, names)
        height, width = img.height, img.width
        if size > height or size > width:
            raise DataError(
                f"Area '{area}' is {width} x {height} px on its grid, smaller than the patch "
                f"size of {size} px. Lower `patches.size` to at most {min(width, height)} or "
                f"enlarge `areas.{area}.bbox`."
            )
        windows = _windows(area, img.tags(), (height, width), size, stride)
        kept: list[tuple[int, int, float, np.ndarray]] = []
        for row, col, image_patch, label_patch in _patches(img, lab, windows, size):
            valid = valid_mask(image_patch, label_patch)
            fraction = float(valid.mean())
            if valid.any() and int(label_patch[valid].max()) >= len(names):
                raise DataError(
                    f"Area '{area}': labels '{lab.name}' hold class index "
                    f"{int(label_patch[valid].max())}, but only {len(names)} classes are "
                    f"configured. Delete results/aligned/{area}/ and rerun `align_area`."
                )
            if fraction >= min_valid:
                counts = class_counts(np.where(valid, label_patch, IGNORE), len(names))
                kept.append((row, col, fraction, counts))
        log.info(
            "area '%s': %d of %d patches of %d px have >= %.0f%% valid pixels",
            area,
            len(kept),
            len(windows),
            size,
            100 * min_valid,
        )
        if not kept:
            raise DataError(
                f"Area '{area}': none of its {len(windows)} patches of {size} px has a valid "
                f"fraction >= {min_valid} (valid = labelled and imagery present). Lower "
                "`patches.min_valid` or check the aligned image and labels of this area."
            )
        index = _index_frame(area, kept, size, names, img.transform, img.crs)
        if img.crs is None:  # a pixel window: which file's pixels the footprints are in
            index["grid"] = pixel_grid_id(img.tags())
        with (
            atomic_path(out_images) as tmp_images,
            atomic_path(out_labels) as tmp_labels,
            atomic_path(out_index) as tmp_index,
        ):
            _write_store(area, img, lab, tmp_images, tmp_labels, dtype)
            index.to_parquet(tmp_index)
    return index


def _windows(
    area: str, tags: dict[str, str], shape: tuple[int, int], size: int, stride: int
) -> list[tuple[int, int]]:
    """The area's patch windows: over the whole grid, or chip by chip for a chip mosaic."""
    if "chip_size" not in tags:
        return patch_windows(*shape, size, stride)
    cell = tuple(int(v) for v in json.loads(tags["chip_size"]))
    if size > min(cell):
        raise DataError(
            f"Area '{area}': its chips are {cell[1]} x {cell[0]} px, smaller than the patch "
            f"size of {size} px, and a patch may not span two chips. Set `patches.size` to "
            f"at most {min(cell)} (the chip side: one patch per chip)."
        )
    return chip_patch_windows(*shape, (cell[0], cell[1]), size, stride)


STORE_STRIP = 256
"""Rows of the area read and written at a time while writing the store."""


def _write_store(
    area: str,
    img: rasterio.DatasetReader,
    lab: rasterio.DatasetReader,
    out_images: Path,
    out_labels: Path,
    dtype: str,
) -> None:
    """Write the area's pixels, ``(H, W, C)`` in ``dtype``, and its valid labels ``(H, W)``."""
    shape = (img.height, img.width)
    # plain writes, not memory maps: a full disk is then an error, not a SIGBUS
    with out_images.open("wb") as file_images, out_labels.open("wb") as file_labels:
        images_npy = NpyWriter(file_images, dtype, (*shape, img.count))
        labels_npy = NpyWriter(file_labels, np.uint8, shape)
        for top in range(0, img.height, STORE_STRIP):
            strip = Window(0, top, img.width, min(STORE_STRIP, img.height - top))
            image, labels = img.read(window=strip), lab.read(1, window=strip)
            images_npy.extend(to_store_dtype(image.transpose(1, 2, 0), dtype, area))
            labels_npy.extend(np.where(valid_mask(image, labels), labels, IGNORE))
        images_npy.finish()
        labels_npy.finish()


def pixel_grid_id(tags: dict[str, str]) -> str:
    """Name the pixel grid of an area without a CRS: its source file.

    Areas cut from one file share it, so the split keeps its buffer between them; areas
    of other files never touch.
    """
    return f"pixels of {tags.get('source', 'an unknown file')}"


def _check_inputs(
    area: str, img: rasterio.DatasetReader, lab: rasterio.DatasetReader, names: list[str]
) -> None:
    """Image and labels must share the grid; the labels' class list must be ``names``."""
    if (img.crs, img.transform, img.shape) != (lab.crs, lab.transform, lab.shape):
        raise DataError(
            f"Area '{area}': aligned image '{img.name}' and labels '{lab.name}' are not on the "
            "same grid (CRS, transform, shape). Delete both and rerun `align_area`."
        )
    tagged = lab.tags().get("classes")
    if tagged is not None and json.loads(tagged) != names:
        raise DataError(
            f"Area '{area}': labels '{lab.name}' were made for the classes {json.loads(tagged)}, "
            f"but the config lists {names}. Delete results/aligned/{area}/ and rerun "
            "`align_area` with the current `classes`."
        )


def _patches(
    img: rasterio.DatasetReader,
    lab: rasterio.DatasetReader,
    windows: Sequence[tuple[int, int]],
    size: int,
) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """Yield ``(row, col, image, labels)`` per window, reading one strip of rows at a time.

    ``windows`` must be sorted by row (as :func:`patch_windows` returns them).
    """
    strip_row: int | None = None
    image_strip = label_strip = np.empty(0)
    for row, col in windows:
        if row != strip_row:
            strip = Window(0, row, img.width, size)
            image_strip = img.read(window=strip)
            label_strip = lab.read(1, window=strip)
            strip_row = row
        yield (
            row,
            col,
            image_strip[:, :, col : col + size],
            label_strip[:, col : col + size],
        )


def _index_frame(
    area: str,
    kept: Sequence[tuple[int, int, float, np.ndarray]],
    size: int,
    names: Sequence[str],
    transform: rasterio.Affine,
    crs: rasterio.crs.CRS,
) -> gpd.GeoDataFrame:
    """Build the per-area patch index: one row per kept patch, footprint in the area CRS."""
    rows = np.array([k[0] for k in kept], dtype=np.int64)
    cols = np.array([k[1] for k in kept], dtype=np.int64)
    counts = np.stack([k[3] for k in kept]).astype(np.int64)
    # Corners of each window through the affine transform (north-up grid).
    left, top = transform @ (cols, rows)
    right, bottom = transform @ (cols + size, rows + size)
    footprints = shapely.box(
        np.minimum(left, right),
        np.minimum(top, bottom),
        np.maximum(left, right),
        np.maximum(top, bottom),
    )
    frame = pd.DataFrame(
        {
            "area": area,
            "patch": np.arange(len(kept), dtype=np.int64),
            "row": rows,
            "col": cols,
            "size": np.int64(size),
            "valid_fraction": np.array([k[2] for k in kept], dtype=np.float64),
            **{f"count_{name}": counts[:, i] for i, name in enumerate(names)},
        }
    )
    return gpd.GeoDataFrame(frame, geometry=footprints, crs=crs)
