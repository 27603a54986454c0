"""The edges: opening and writing rasters and tables, atomically and with clear errors.

Every GeoTIFF profile of the workflow is made here (:func:`gtiff_profile`), every COG is
made by :func:`to_cog`, every CSV or JSON input of a rule read by :func:`read_table` or
:func:`read_json`.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import rasterio
import rasterio.shutil
from rasterio.errors import RasterioIOError

from landcover.errors import DataError


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only on success.

    A failing writer leaves nothing at ``path`` (no output that looks complete).
    The temporary name keeps the suffix so that drivers chosen by extension work.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=final.suffix, dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp makes the file private (0600); outputs get the usual umask-based mode
    umask = os.umask(0)
    os.umask(umask)
    tmp_path.chmod(0o666 & ~umask)
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    finally:
        tmp_path.unlink(missing_ok=True)


def open_raster(path: str | Path, what: str = "raster") -> rasterio.DatasetReader:
    """Open a raster for reading, with an error that names the file and a fix.

    Args:
        path: local path or GDAL path (``/vsicurl/...``).
        what: what the file is, for the message (e.g. "aligned image of area 'delta'").

    Raises:
        DataError: when GDAL cannot open or decode the file.
    """
    try:
        return rasterio.open(path)
    except RasterioIOError as err:
        raise DataError(
            f"Cannot read {what} '{path}': {err}. The file is missing, corrupt or not a "
            "GeoTIFF; delete it and rerun the rule that makes it (or fix the source path)."
        ) from err


BLOCKSIZE = 256
"""Tile size of every GeoTIFF and COG the workflow writes."""

Codec = Literal["deflate", "zstd", "none"]

CODECS: dict[str, dict[str, object]] = {
    # raw downloads and demo files: the codec every GeoTIFF reader knows
    "deflate": {"compress": "deflate"},
    # intermediates read again by the workflow (aligned rasters, the map before its COG):
    # ZSTD level 1 writes and decodes much faster than deflate (bench/align_efficiency.py);
    # GDAL >= 2.3, so QGIS 3, reads it
    "zstd": {"compress": "zstd", "zstd_level": 1},
    # in-memory sources of a COG copy: compressing them would only cost time
    "none": {},
}


def gtiff_profile(
    crs: Any,
    transform: Any,
    shape: Sequence[int],
    count: int,
    dtype: Any,
    nodata: float | None,
    *,
    codec: Codec = "deflate",
    **extra: Any,
) -> dict[str, Any]:
    """A tiled GeoTIFF profile (256 px tiles, BigTIFF when needed) for ``rasterio.open``.

    Args:
        crs: the raster's CRS.
        transform: its affine transform.
        shape: ``(..., height, width)``.
        count: number of bands.
        dtype: pixel type.
        nodata: nodata value (None: none).
        codec: ``deflate``, ``zstd`` or ``none`` (:data:`CODECS`).
        extra: more creation options (``predictor``, ``interleave``...).

    """
    return {
        "driver": "GTiff",
        "crs": crs,
        "transform": transform,
        "height": int(shape[-2]),
        "width": int(shape[-1]),
        "count": int(count),
        "dtype": np.dtype(dtype).name,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": BLOCKSIZE,
        "blockysize": BLOCKSIZE,
        "BIGTIFF": "IF_SAFER",
        **CODECS[codec],
        **extra,
    }


def to_cog(src: Any, dst: str | Path, resampling: str = "mode", **options: Any) -> None:
    """Copy a raster (path or open dataset) to a deflate Cloud-Optimized GeoTIFF with overviews.

    GDAL's COG driver does it in one copy, where rio-cogeo's ``cog_translate`` writes an
    intermediate file with overviews and copies it.
    Tags, band descriptions and the colour table are kept.

    Args:
        src: the raster to copy.
        dst: the COG's path (write it to an :func:`atomic_path`).
        resampling: overview resampling (``mode`` for classes, ``average`` for values).
        options: more COG creation options (``PREDICTOR``, ``OVERVIEW_COUNT``...).

    """
    creation = {
        "COMPRESS": "DEFLATE",
        "BLOCKSIZE": BLOCKSIZE,
        "OVERVIEW_RESAMPLING": resampling.upper(),
        "BIGTIFF": "IF_SAFER",
    } | {key.upper(): value for key, value in options.items()}
    rasterio.shutil.copy(
        src if not isinstance(src, Path) else str(src), str(dst), driver="COG", **creation
    )


def read_table(
    path: str | Path,
    what: str,
    columns: Sequence[str] = (),
    fix: str = "rerun the rule that makes it",
    **kwargs: Any,
) -> pd.DataFrame:
    """Read a CSV table that a rule wrote, with errors that name the file and the fix.

    Args:
        path: the table.
        what: what it is, for messages.
        columns: columns it must have.
        fix: what to do when it is unreadable or lacks a column.
        kwargs: passed to ``pandas.read_csv`` (``sep``, ``index_col``...).

    Raises:
        DataError: when the file cannot be read or lacks a column.

    """
    try:
        frame = pd.read_csv(path, **kwargs)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DataError(f"Cannot read {what} '{path}' ({err}); {fix}.") from err
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{what} '{path}' lacks column(s) {missing} (has {list(frame.columns)}); {fix}."
        )
    return frame


def read_json(path: str | Path, what: str, fix: str = "rerun the rule that makes it") -> Any:
    """Read a JSON file that a rule wrote, with an error that names the file and the fix.

    Raises:
        DataError: when the file cannot be read or is not JSON.

    """
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"Cannot read {what} '{path}' ({err}); {fix}.") from err
