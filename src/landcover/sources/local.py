"""Local (or URL) GeoTIFFs: imagery and labels the user brings, in any CRS and resolution."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import rasterio

from landcover.errors import ConfigError, SourceError
from landcover.grid import BBox, Grid, area_grid
from landcover.sources.composite import (
    NODATA,
    to_reflectance,
)
from landcover.sources.http import (
    HttpSettings,
    exists,
    gdal_options,
    gdal_path,
    gdal_read,
    is_remote,
)
from landcover.sources.windows import (
    LABEL_MARGIN,
    read_label_window,
    read_onto_grid,
    write_imagery,
    write_labels,
)

logger = logging.getLogger(__name__)


def check_imagery(source: Mapping[str, Any]) -> None:
    """A local imagery source needs its path.

    Raises:
        ConfigError: naming ``imagery.root``.

    """
    if not source["root"]:
        raise ConfigError("imagery.root: kind 'local' needs the GeoTIFF path (or band folder).")


def check_labels(source: Mapping[str, Any]) -> None:
    """A local label source needs its path.

    Raises:
        ConfigError: naming ``labels.root``.

    """
    if not source["root"]:
        raise ConfigError("labels.root: kind 'local' needs the labels GeoTIFF path.")


def acquire_labels(area: str, bbox: BBox, *, root: str | Path | None, out: str | Path) -> Path:
    """Write an area's label codes: the window of one GeoTIFF (or URL) over its bbox.

    Args:
        area: area id (for messages and tags).
        bbox: (west, south, east, north) in degrees, checked.
        root: one raster of integer codes 0..255, in any CRS (``labels.root``).
        out: output GeoTIFF: uint8 codes on the file's pixel grid, colour table kept.

    Raises:
        ConfigError: when ``root`` is not set.
        SourceError: when the file does not exist or stays unreachable.
        DataError: when the file is corrupt or a code does not fit in uint8.

    """
    if not root:
        raise ConfigError(
            f"Area '{area}': labels.kind 'local' needs labels.root, the path of a "
            "GeoTIFF of label codes."
        )
    settings = HttpSettings.from_env()
    what = f"label raster of area '{area}'"
    with rasterio.Env(**gdal_options(settings)):
        if not exists(str(root), what, settings):
            raise SourceError(
                f"Area '{area}': the label raster '{root}' does not exist; set "
                "labels.root to an existing GeoTIFF of label codes."
            )
        path = gdal_path(root)
        read = partial(read_label_window, path, bbox, LABEL_MARGIN)
        windows = [gdal_read(path, what, read, settings)]
    urls = [str(root)]
    return write_labels(area, bbox, windows, urls, {"source": json.dumps(urls)}, "local", out)


def acquire_imagery(
    area: str,
    bbox: BBox,
    *,
    root: str | Path,
    bands: Sequence[str],
    scale: float,
    offset: float,
    resolution: float,
    out: str | Path,
) -> Path:
    """Put a local image (one file, or one file per band) on the area grid.

    ``root`` is one multi-band GeoTIFF (bands matched by description, else taken in
    order), a folder of ``<band>.tif`` files or a path pattern with ``{band}``, in any
    CRS and resolution; its DN are converted with ``scale`` and ``offset`` and put on
    the area grid (:func:`~landcover.sources.windows.read_onto_grid`; no cloud mask).
    The output is encoded as the STAC composites are (uint16 DN, scale and offset).

    Raises:
        ConfigError: when the file's bands cannot be matched to ``bands``.
        DataError: when a file cannot be decoded or a band is all nodata.
        SourceError: when a remote file stays unreachable.

    """
    grid = area_grid(bbox, resolution)
    settings = HttpSettings.from_env()
    return _acquire_local_imagery(area, grid, root, list(bands), scale, offset, out, settings)


def _local_bands(area: str, root: str, bands: Sequence[str]) -> list[tuple[str, int]]:
    """Return (GDAL path, band index) of each band of a local image.

    ``root`` is a multi-band GeoTIFF, a folder of ``<band>.tif`` files, or a path pattern
    with ``{band}``.

    Raises:
        ConfigError: when the file's bands cannot be matched to the band names.

    """
    if "{band}" in root:
        return [(gdal_path(root.format(band=band)), 1) for band in bands]
    if not is_remote(root) and Path(root).is_dir():
        return [(str(Path(root, f"{band}.tif")), 1) for band in bands]
    path = gdal_path(root)

    def describe() -> tuple[list[str | None], int]:
        with rasterio.open(path) as src:
            return list(src.descriptions), src.count

    descriptions, count = gdal_read(path, f"imagery of area '{area}'", describe)
    if all(band in descriptions for band in bands):
        return [(path, descriptions.index(band) + 1) for band in bands]
    if count == len(bands):
        return [(path, index) for index in range(1, count + 1)]
    raise ConfigError(
        f"Area '{area}': imagery file '{root}' has {count} band(s) described as "
        f"{descriptions}, which cannot be matched to imagery.bands {list(bands)}. Fix: give "
        "one band per configured band in order, set the band descriptions to the band "
        "names, or use a '{band}' pattern in imagery.root."
    )


def _acquire_local_imagery(
    area: str,
    grid: Grid,
    root: str | Path,
    bands: Sequence[str],
    scale: float,
    offset: float,
    out: str | Path,
    settings: HttpSettings,
) -> Path:
    """Reproject a local image (one file, or one file per band) onto the area grid.

    Bands of any resolution and CRS are stacked on the grid (see :func:`read_onto_grid`).
    """
    sources = _local_bands(area, str(root), bands)

    def layers() -> Any:
        for band, (path, index) in zip(bands, sources, strict=True):
            # the VRT turns the file's own nodata into NODATA
            what = f"band {band} of the imagery of area '{area}'"
            dn = read_onto_grid(path, grid, what, band=index, settings=settings)
            yield to_reflectance(dn, scale, offset, nodata=NODATA)

    tags = {
        "source": str(root),
        "items": json.dumps([]),
        "dates": json.dumps([]),
        "licence": "see the source of the local imagery",
        "area": area,
    }
    with rasterio.Env(**gdal_options(settings)):
        write_imagery(area, grid, bands, layers(), tags, out)
    return Path(out)
