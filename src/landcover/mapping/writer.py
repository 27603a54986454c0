"""Writing maps: class values, colours, confidence, tiles a row at a time, the COG.

The blocks' labels are written a row of tiles at a time (:class:`TileRowWriter`) into a
tiled GeoTIFF, converted to a Cloud-Optimized GeoTIFF at the end, all with GDAL's block
cache bounded (:func:`landcover.io.gdal_env`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import rasterio
import rasterio.shutil
import torch
from rasterio.windows import Window

from landcover.classes import IGNORE, ClassMap
from landcover.errors import ConfigError
from landcover.io import BLOCKSIZE, gtiff_profile

Values = Literal["codes", "indices"]
"""What the map's pixels hold: the source's codes (first code of each class) or class indices."""


CODES_NODATA = 0
"""Nodata of a map in source codes (WorldCover's nodata)."""


CONFIDENCE_NODATA = 255
"""Nodata of the uint8 confidence raster (values are percent, 0-100)."""


def class_values(classes: ClassMap, values: Values) -> tuple[np.ndarray, int]:
    """Return the pixel value of each class and the nodata value of a map.

    Args:
        classes: the class map.
        values: ``"indices"`` (0..K-1, nodata 255) or ``"codes"`` (each class's first
            source code, nodata 0).

    Returns:
        (uint8 array of length K, nodata value).

    """
    if values == "indices":
        return np.arange(len(classes), dtype=np.uint8), IGNORE
    if values == "codes":
        codes = [cs[0] for cs in classes.codes]
        bad = [c for c in codes if not 0 < c < 256]
        if bad:
            raise ConfigError(
                f"predict: class codes {bad} do not fit a uint8 map with nodata 0; set "
                "`predict: values: indices` in the config."
            )
        return np.asarray(codes, dtype=np.uint8), CODES_NODATA
    raise ConfigError(f"predict: values must be 'codes' or 'indices', got '{values}'.")


def colormap(classes: ClassMap, values: Values) -> dict[int, tuple[int, int, int, int]]:
    """Return the map's colour table, keyed by the values written (nodata transparent)."""
    table, nodata = class_values(classes, values)
    by_index = classes.colormap()
    cmap = {int(v): by_index[i] for i, v in enumerate(table)}
    cmap[nodata] = (0, 0, 0, 0)
    return cmap


def labels_from_probs(
    probs: np.ndarray,
    valid: np.ndarray,
    table: np.ndarray,
    nodata: int,
    confidence: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Map values and confidence of probabilities ``(K, h, w)``.

    Args:
        probs: class probabilities.
        valid: True where the input holds data.
        table: the pixel value of each class (:func:`class_values`).
        nodata: value where the input is nodata.
        confidence: compute the confidence (else ``None`` is returned for it).

    Returns:
        (uint8 map values, uint8 confidence in percent with 255 where nodata, or None).

    """
    # torch.max: the maximum and its first index in one pass, on all of torch's threads
    top, index = torch.from_numpy(np.ascontiguousarray(probs)).max(dim=0)
    values = np.where(valid, table[index.numpy()], np.uint8(nodata)).astype(np.uint8)
    if not confidence:
        return values, None
    conf = np.rint(top.numpy() * 100).astype(np.uint8)
    conf = np.where(valid, conf, np.uint8(CONFIDENCE_NODATA)).astype(np.uint8)
    return values, conf


def probabilities_percent(probs: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Probabilities ``(K, h, w)`` as uint8 percent; :data:`CONFIDENCE_NODATA` where invalid."""
    percent = np.rint(np.asarray(probs) * 100).astype(np.uint8)
    return np.where(valid, percent, np.uint8(CONFIDENCE_NODATA)).astype(np.uint8)


def tiled_profile(src: rasterio.DatasetReader, nodata: int, count: int = 1) -> dict[str, object]:
    """Profile of a uint8 raster of ``count`` bands on ``src``'s grid, before its COG.

    ZSTD level 1: the intermediate is written once and read once by :func:`to_cog`, so the
    cheapest codec that keeps it small.
    """
    return gtiff_profile(src.crs, src.transform, src.shape, count, "uint8", nodata, codec="zstd")


class TileRowWriter:
    """Collect blocks of a uint8 raster and write them a row of tiles at a time.

    Blocks arrive in row-major order (:func:`iter_probability_blocks`); rows are written
    once every tile they touch is complete, so GDAL compresses each tile once instead of
    caching partly written tiles or writing them twice. Holds ``BLOCKSIZE + rows`` rows
    of the scene's width (a few MB for 20000 px).
    """

    def __init__(self, dst: rasterio.io.DatasetWriter, rows: int) -> None:
        """Prepare a buffer for up to ``rows`` rows of finished blocks past a row of tiles.

        Args:
            dst: the open raster (all its bands are written).
            rows: the most rows a block spans (the window).

        """
        self.dst = dst
        self.buffer = np.zeros((dst.count, BLOCKSIZE + rows, dst.width), dtype=np.uint8)
        self.top = 0  # scene row of the buffer's first row
        self.done = 0  # buffer rows whose every column has arrived

    def add(self, values: np.ndarray, row: int, col: int) -> None:
        """Place a block ``(h, w)`` or ``(bands, h, w)`` at ``(row, col)``; flush full tiles."""
        h, w = values.shape[-2:]
        r = row - self.top
        if r != self.done or r + h > self.buffer.shape[1]:
            raise ValueError(f"block at row {row} does not follow row {self.top + self.done}")
        self.buffer[:, r : r + h, col : col + w] = values
        if col + w == self.dst.width:  # the block ends these rows
            self.done = r + h
            self.flush(self.done // BLOCKSIZE * BLOCKSIZE)

    def flush(self, n: int | None = None) -> None:
        """Write the first ``n`` finished rows (all of them by default)."""
        n = self.done if n is None else n
        if n <= 0:
            return
        self.dst.write(self.buffer[:, :n], window=Window(0, self.top, self.dst.width, n))
        keep = self.done - n
        self.buffer[:, :keep] = self.buffer[:, n : self.done]
        self.top, self.done = self.top + n, keep
