"""The edges: opening and writing rasters and tables, atomically and with clear errors.

Every GeoTIFF profile of the workflow is made here (:func:`gtiff_profile`), every COG is
made by :func:`to_cog`, every CSV or JSON input of a rule read by :func:`read_table` or
:func:`read_json`.
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import json
import math
import os
import shutil
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import rasterio
import rasterio.shutil
from rasterio._err import CPLE_BaseError  # GDAL's errors, which rasterio keeps private
from rasterio.enums import Interleaving
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.windows import Window

from landcover.errors import DataError, DiskFullError, LandcoverError, WriteError


def quiet_pixel_grids() -> None:
    """Silence rasterio's warning about rasters without a map projection.

    Areas given as pixel windows of such files are valid here, and rasterio would warn
    on every open of one (a warning storm in every log).
    """
    warnings.filterwarnings("ignore", category=NotGeoreferencedWarning)


quiet_pixel_grids()

LOW_SPACE = 1 << 20
"""Free bytes below which a failed write is taken for a full disk. GDAL and torch report a
full disk as a bare "Write failed" (the errno is lost on the way), but a write that runs
out of room leaves the filesystem all but full: write(2) fills what fits, then fails."""

_WRITING: contextvars.ContextVar[tuple[Path, ...]] = contextvars.ContextVar(
    "landcover_writing", default=()
)
"""The files of the :func:`atomic_path` blocks open now, outermost first. A failure in
nested blocks (an image and its labels written together) names them all: GDAL's errors do
not say which file failed."""


class _Incomplete(Exception):
    """A written file is not whole, although its writer reported no error."""


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only once it is whole.

    A failing writer leaves nothing at ``path`` (no output that looks complete), and
    neither does one that reports success for a file it did not finish: GDAL only logs
    the errors of its last writes (the TIFF directory, written on close), so the file is
    checked by its format before the rename (:func:`_check_complete`). A full disk is a
    :class:`DiskFullError` that names the file and the mount; anything else incomplete is
    a :class:`WriteError`. The temporary name keeps the suffix, so that drivers chosen by
    extension work.
    """
    final = Path(path)
    token = _WRITING.set((*_WRITING.get(), final))
    try:
        with _named_failures(final):
            tmp_path = _temporary(final)
        try:
            with _named_failures(final):
                yield tmp_path
                _check_complete(tmp_path)
            os.replace(tmp_path, final)
        finally:
            tmp_path.unlink(missing_ok=True)
    finally:
        _WRITING.reset(token)


def _temporary(final: Path) -> Path:
    """An empty file beside ``final``, with the mode a plain ``open`` would give it."""
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=final.suffix, dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp makes the file private (0600); outputs get the usual umask-based mode
    umask = os.umask(0)
    os.umask(umask)
    tmp_path.chmod(0o666 & ~umask)
    return tmp_path


@contextlib.contextmanager
def _named_failures(final: Path) -> Iterator[None]:
    """Turn a failed or incomplete write into an error naming the file(s) and the fix."""
    try:
        yield
    except LandcoverError:
        raise  # already says what is wrong (an inner block's error, a bad input)
    # GDAL's errors come as CPLE_*, torch's as RuntimeError; neither keeps the errno
    except (OSError, RuntimeError, CPLE_BaseError, _Incomplete) as err:
        names = _listed(_WRITING.get() or (final,))
        free, mount, fix = _fullest(final.parent)
        said = (
            f"read back: {err}" if isinstance(err, _Incomplete) else f"{type(err).__name__}: {err}"
        )
        if _disk_full(err, free):
            raise DiskFullError(
                f"Disk full while writing {names} ({_human(free)} left on {mount}): {fix} "
                f"and rerun; nothing unfinished was kept ({said})."
            ) from err
        if isinstance(err, _Incomplete):
            raise WriteError(
                f"{names} came out incomplete although the writer reported no error "
                f"({err}); nothing was kept. Rerun the job; if it happens again, check the "
                f"disk behind {mount}."
            ) from err
        raise


def _listed(paths: Sequence[Path]) -> str:
    """``'a'``, ``'a' and 'b'``, ``'a', 'b' and 'c'``."""
    quoted = [f"'{path}'" for path in paths]
    return " and ".join([", ".join(quoted[:-1]), quoted[-1]] if len(quoted) > 1 else quoted)


def _disk_full(err: BaseException, free: int) -> bool:
    """Whether a failed write ran out of room.

    It did when its errno says so, or when it names no other cause and next to nothing is
    left (:data:`LOW_SPACE`).
    """
    if _says_disk_full(err):
        return True
    if isinstance(err, OSError) and err.errno not in (None, errno.EIO):
        return False  # a named other cause: permissions, a missing folder...
    return free < LOW_SPACE


def _says_disk_full(err: BaseException | None) -> bool:
    """Whether an error, or one it was raised from, is ENOSPC or EDQUOT."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        # pyarrow and others keep only the text of the errno
        if any(text in str(err) for text in ("No space left on device", "Disk quota exceeded")):
            return True
        err = err.__cause__ or err.__context__
    return False


def _fullest(folder: Path) -> tuple[int, Path, str]:
    """Free bytes and mount point of the filesystem that is full, and the fix.

    The output's, unless only the temporary folder's is (map jobs write their scratch
    rasters to TMPDIR, and GDAL's errors do not say which file failed).
    """
    out_free, out_mount = _free_space(folder)
    tmp_free, tmp_mount = _free_space(Path(tempfile.gettempdir()))
    if tmp_free < min(out_free, LOW_SPACE):
        return tmp_free, tmp_mount, "free space there or set TMPDIR to a folder with room"
    return out_free, out_mount, "free space there"


def _free_space(folder: Path) -> tuple[int, Path]:
    """Bytes free to this user on the filesystem of ``folder``, and its mount point."""
    folder = folder.absolute()
    while not folder.exists():  # mkdir itself may have failed
        folder = folder.parent
    mount = folder
    while not os.path.ismount(mount):
        mount = mount.parent
    return shutil.disk_usage(folder).free, mount


def _human(size: float) -> str:
    """``1.5 MiB``-style size."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def _check_complete(path: Path) -> None:
    """Check a just-written file by its format; raise :class:`_Incomplete` when cut off.

    The formats of the workflow's outputs get a check; the others (figures, text) rely on
    their writer's exception. Each reads what its format puts last (a directory, a
    footer, a size, a line break), not the whole file: a full disk cuts files off at the
    end, and this runs on every write.
    """
    check = _CHECKS.get(path.suffix.lower())
    if check is None:
        return
    try:
        check(path)
    except _Incomplete:
        raise
    except Exception as err:  # each library fails in its own types
        raise _Incomplete(f"{type(err).__name__}: {err}") from err


def _check_tiff(path: Path) -> None:
    """Open the GeoTIFF; every block of every band and overview must lie within the file.

    Opening reads the directory, which GDAL writes on close, where its errors are only
    logged; a block that a full disk cut off ends past the end of the file. The last
    block of the file is decoded too. Decoding every block would catch no more cut-offs
    and costs about as much as the write itself (docs/benchmarks.md), so it is not done.
    """
    size = path.stat().st_size
    with rasterio.open(path) as src:
        levels = len(src.overviews(1)) if src.count else 0
        last = _last_block(src, size)
        if last is not None:
            src.read(window=last)
    for level in range(levels):
        with rasterio.open(path, overview_level=level) as src:
            _last_block(src, size)


def _last_block(src: rasterio.DatasetReader, size: int) -> Window | None:
    """The window of the block stored last, after checking that none ends past ``size``.

    Blocks never written (a sparse file) have no offset and are skipped.
    """
    # pixel-interleaved bands share their blocks; band-interleaved ones have their own
    bands = src.indexes if src.interleaving == Interleaving.band else src.indexes[:1]
    last, end_of_last = None, 0
    for band in bands:
        for (row, col), window in src.block_windows(band):
            offset = src.get_tag_item(f"BLOCK_OFFSET_{col}_{row}", "TIFF", bidx=band)
            length = src.get_tag_item(f"BLOCK_SIZE_{col}_{row}", "TIFF", bidx=band)
            if offset is None or length is None:
                continue
            end = int(offset) + int(length)
            if end > size:
                raise _Incomplete(
                    f"block ({row}, {col}) of band {band} ends at byte {end} of {size}"
                )
            if end > end_of_last:
                last, end_of_last = window, end
    return last


def _check_npy(path: Path) -> None:
    """The file is as long as its header says (a sparse or cut-off file is not)."""
    with path.open("rb") as file:
        version = np.lib.format.read_magic(file)
        read = {(1, 0): np.lib.format.read_array_header_1_0}.get(
            version, np.lib.format.read_array_header_2_0
        )
        shape, _, dtype = read(file)
        offset = file.tell()
    if dtype.hasobject:
        return  # pickled: no size to expect
    expected = offset + math.prod(shape) * dtype.itemsize
    if path.stat().st_size != expected:
        raise _Incomplete(f"{path.stat().st_size} bytes where its header asks for {expected}")


def _check_parquet(path: Path) -> None:
    """The footer (written last) reads."""
    import pyarrow.parquet as pq  # geopandas' engine, imported where parquet is written

    pq.read_metadata(path)


def _check_json(path: Path) -> None:
    """The document parses."""
    json.loads(path.read_bytes())


def _check_csv(path: Path) -> None:
    """A CSV that pandas finished ends with a line break."""
    with path.open("rb") as file:
        if file.seek(0, os.SEEK_END) == 0:
            return  # nothing written at all: an empty table is the writer's choice
        file.seek(-1, os.SEEK_END)
        if file.read(1) != b"\n":
            raise _Incomplete("it does not end with a line break")


def _check_zip(path: Path) -> None:
    """The central directory of a zip (torch's format) reads; every member is in the file.

    The directory is written last, so a cut-off file has none.
    """
    size = path.stat().st_size
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.header_offset + info.compress_size > size:
                raise _Incomplete(f"member {info.filename} runs past the end of the file")


_CHECKS: dict[str, Callable[[Path], None]] = {
    ".tif": _check_tiff,
    ".tiff": _check_tiff,
    ".npy": _check_npy,
    ".parquet": _check_parquet,
    ".json": _check_json,
    ".geojson": _check_json,
    ".csv": _check_csv,
    ".pt": _check_zip,
}
"""File checks by suffix (lower case)."""


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


GDAL_CACHE_MB = 64
"""GDAL's block cache while mapping and tiling, MB, unless ``GDAL_CACHEMAX`` is set.

GDAL's default (5 % of the RAM) lets windowed reads and the COG conversion fill memory
in proportion to the scene; 64 MB holds the blocks of a batch of windows of a 10-band
image (about 40 MB)."""


def gdal_env(threads: int) -> dict[str, object]:
    """GDAL options while mapping and tiling; those set in the environment are left to it.

    ``GDAL_CACHEMAX``: :data:`GDAL_CACHE_MB`; ``GDAL_NUM_THREADS``: ``threads``, so tiles
    are decompressed (reads) and compressed (the COG) on all the rule's threads.
    """
    options = {"GDAL_CACHEMAX": GDAL_CACHE_MB, "GDAL_NUM_THREADS": str(max(1, int(threads)))}
    return {key: value for key, value in options.items() if key not in os.environ}
