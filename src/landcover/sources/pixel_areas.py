"""Areas that are pixel windows of local files (``areas.<name>.window``), with or without a CRS.

For scenes without Earth coordinates (planetary or microscope images, photo mosaics) and
for any file a user wants mapped on its own pixel grid: the area is the window
``[col, row, width, height]`` of ``imagery.root`` and ``labels.root`` (``window: all``:
the whole files; ``{area}`` in a root: one file per area). Windows are copied strip by
strip (memory bounded by a strip, whatever the scene), never resampled; imagery and
labels must share their pixel grid (same size, and the same transform when the files
are georeferenced). The copy keeps the file's CRS when it has one and its pixel grid
otherwise (:func:`landcover.prepare.align.align_window_area` puts them together).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window

from landcover.errors import ConfigError, DataError, SourceError
from landcover.io import atomic_path, gtiff_profile
from landcover.sources.http import HttpSettings, exists, gdal_path, is_remote

log = logging.getLogger(__name__)

WindowSpec = Sequence[int] | str
"""``[col, row, width, height]`` in the file's pixels, or ``"all"``."""

STRIP = 512
"""Rows copied at a time."""

SAMPLE_SIDE = 512
"""Side of the decimated read the value-range check looks at."""


def area_root(root: str | Path, area: str) -> str:
    """A source root with ``{area}`` replaced by the area's name (one file per area)."""
    return str(root).replace("{area}", area)


def resolve_window(spec: WindowSpec, width: int, height: int, area: str, path: str) -> Window:
    """The area's window in a ``width`` x ``height`` px file.

    Raises:
        ConfigError: a window that is empty or reaches outside the file, naming the area,
            the file's size and the fix.

    """
    if spec == "all":
        return Window(0, 0, width, height)
    col, row, w, h = (int(v) for v in spec)
    if col < 0 or row < 0 or w <= 0 or h <= 0 or col + w > width or row + h > height:
        raise ConfigError(
            f"Area '{area}': window [{col}, {row}, {w}, {h}] ([col, row, width, height] in "
            f"pixels) does not lie inside '{path}', which is {width} x {height} px. Fix "
            f"`areas.{area}.window` (or use `window: all` for the whole file)."
        )
    return Window(col, row, w, h)


def strips(window: Window, rows: int = STRIP) -> Iterator[tuple[Window, Window]]:
    """``(source window, output window)`` pairs of at most ``rows`` rows covering ``window``."""
    for top in range(0, int(window.height), rows):
        height = min(rows, int(window.height) - top)
        yield (
            Window(window.col_off, window.row_off + top, window.width, height),
            Window(0, top, window.width, height),
        )


def _open_local(root: str, area: str, section: str, settings: HttpSettings) -> str:
    """The GDAL path of a local (or remote) file; a missing one is an error with the fix."""
    if not exists(root, f"{section} of area '{area}'", settings):
        raise SourceError(
            f"Area '{area}': the {section} file '{root}' does not exist. Fix {section}.root "
            "(`{area}` in it is replaced by the area's name)."
        )
    return gdal_path(root) if not is_remote(root) else root


def _copy(
    sources: Sequence[tuple[rasterio.DatasetReader, int]],
    spec: WindowSpec,
    area: str,
    out: Path,
    *,
    band_tags: Sequence[Mapping[str, Any]],
    tags: Mapping[str, str],
) -> None:
    """Copy band ``index`` of each dataset over the area's window into one GeoTIFF."""
    first = sources[0][0]
    window = resolve_window(spec, first.width, first.height, area, first.name)
    dtypes = {ds.dtypes[index - 1] for ds, index in sources}
    nodatas = {ds.nodata for ds, _ in sources}
    dtype = dtypes.pop() if len(dtypes) == 1 and len(nodatas) == 1 else "float32"
    nodata = nodatas.pop() if dtype != "float32" or len(nodatas) == 1 else np.nan
    shape = (int(window.height), int(window.width))
    transform = first.window_transform(window)
    profile = gtiff_profile(first.crs, transform, shape, len(sources), dtype, nodata)
    with rasterio.open(out, "w", **profile) as dst:
        for band, (ds, index) in enumerate(sources, 1):
            for source, target in strips(window):
                data = ds.read(index, window=source)
                if ds.nodata is not None and nodata is not None and ds.nodata != nodata:
                    data = np.where(data == ds.nodata, nodata, data.astype(dtype))
                dst.write(data.astype(dtype, copy=False), band, window=target)
            meta = band_tags[band - 1]
            dst.set_band_description(band, str(meta.get("name", f"band{band}")))
        dst.scales = [float(m.get("scale", 1.0)) for m in band_tags]
        dst.offsets = [float(m.get("offset", 0.0)) for m in band_tags]
        dst.update_tags(**tags, window=json.dumps(list(_window_list(window))))


def _window_list(window: Window) -> tuple[int, int, int, int]:
    return int(window.col_off), int(window.row_off), int(window.width), int(window.height)


def _same_grid(datasets: Sequence[rasterio.DatasetReader], area: str, section: str) -> None:
    """Band files of one area must share their pixel grid (nothing is resampled here)."""
    first = datasets[0]
    for ds in datasets[1:]:
        if (ds.width, ds.height) != (first.width, first.height) or ds.crs != first.crs:
            raise DataError(
                f"Area '{area}': the {section} files '{first.name}' ({first.width} x "
                f"{first.height} px, CRS {first.crs}) and '{ds.name}' ({ds.width} x "
                f"{ds.height} px, CRS {ds.crs}) are not on one pixel grid; an area given as "
                "a `window` is never resampled. Fix: give files of the same size (and CRS), "
                "or give the area a `bbox` so that they are warped onto its grid."
            )


def acquire_imagery_window(
    area: str,
    window: WindowSpec,
    *,
    root: str,
    bands: Sequence[str],
    scale: float,
    offset: float,
    out: str | Path,
) -> Path:
    """Copy the area's window of a local image (one file, or one file per band).

    Bands are matched as for bbox areas (``landcover.sources.local``: by description,
    in order without descriptions, a folder or ``{band}`` pattern); values keep their
    type, with ``scale`` / ``offset`` as each band's GDAL scale and offset (checked on a
    decimated read against the usual reflectance range).

    Raises:
        ConfigError: bands that cannot be matched, a window outside the file, values
            that do not fit the scale.
        DataError: band files on different grids.
        SourceError: a missing file.

    """
    from landcover.sources.local import _local_bands, range_problem  # one matcher for both

    settings = HttpSettings.from_env()
    root = area_root(root, area)
    if "{band}" not in root and not Path(root).is_dir():  # one file: say plainly if missing
        _open_local(root, area, "imagery", settings)
    sources = _local_bands(area, root, list(bands), settings)
    with ExitStack() as stack:
        opened = [(stack.enter_context(rasterio.open(path)), index) for path, index in sources]
        _same_grid([ds for ds, _ in opened], area, "imagery")
        first = opened[0][0]
        check = resolve_window(window, first.width, first.height, area, first.name)
        for band, (ds, index) in zip(bands, opened, strict=True):
            sample = ds.read(index, window=check, out_shape=_sample_shape(check), masked=True)
            problem = range_problem(np.ma.filled(sample.astype("float64"), np.nan), scale, offset)
            if problem:
                raise ConfigError(
                    f"Area '{area}': band {band} (file band {index}) of imagery '{ds.name}' "
                    f"does not fit imagery.scale / imagery.offset: {problem}."
                )
        meta = [{"name": band, "scale": scale, "offset": offset} for band in bands]
        tags = {"source": root, "area": area, "kind": "local", "items": "[]", "dates": "[]"}
        with atomic_path(out) as tmp:
            _copy(opened, window, area, tmp, band_tags=meta, tags=tags)
    log.info("area '%s': imagery window copied from '%s'", area, root)
    return Path(out)


def _sample_shape(window: Window) -> tuple[int, int]:
    return (min(SAMPLE_SIDE, int(window.height)), min(SAMPLE_SIDE, int(window.width)))


def acquire_labels_window(area: str, window: WindowSpec, *, root: str, out: str | Path) -> Path:
    """Copy the area's window of a local label raster (codes as they are).

    Raises:
        ConfigError: a window outside the file.
        SourceError: a missing file.

    """
    settings = HttpSettings.from_env()
    root = area_root(root, area)
    path = _open_local(root, area, "labels", settings)
    with rasterio.open(path) as ds, atomic_path(out) as tmp:
        meta = [{"name": "code"}]
        _copy([(ds, 1)], window, area, tmp, band_tags=meta, tags={"source": root, "area": area})
    log.info("area '%s': label window copied from '%s'", area, root)
    return Path(out)
