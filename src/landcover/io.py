"""The edges: opening and writing rasters and tables, atomically and with clear errors."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import rasterio
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
