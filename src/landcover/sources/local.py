"""Local (or URL) GeoTIFFs: imagery and labels the user brings, in any CRS and resolution.

Checked before anything is written: each file has a CRS and covers enough of the area
(``min_coverage``); a multi-band file's bands are matched to ``imagery.bands`` by
description (:func:`match_bands`); each band's values fit ``imagery.scale`` /
``imagery.offset`` (:func:`range_problem`). Each check names the file and the fix.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from landcover.errors import ConfigError, DataError, SourceError
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
    url_of,
)
from landcover.sources.pixel_areas import (  # areas given as pixel windows
    acquire_imagery_window,
    acquire_labels_window,
    area_root,
)
from landcover.sources.windows import (
    LABEL_MARGIN,
    Footprint,
    covered_fraction,
    is_all_nodata,
    read_footprint,
    read_label_window,
    read_onto_grid,
    write_imagery,
    write_labels,
)

logger = logging.getLogger(__name__)

# the kind's functions (landcover.sources dispatches to them by name)
__all__ = [
    "acquire_imagery",
    "acquire_imagery_window",
    "acquire_labels",
    "acquire_labels_window",
    "check_imagery",
    "check_labels",
    "inputs_imagery",
    "inputs_labels",
]

REFLECTANCE_LIKE = 1.5
"""DN no higher than this under an integer scale are reflectance already (0..1 floats)."""

INTEGER_SCALE = 0.01
"""A scale at most this converts integer DN (Sentinel-2 0.0001, Landsat 0.0000275)."""

REFLECTANCE_MAX = 2.0
"""Surface reflectance stays below about 1.5 (bright clouds, snow); a 95th percentile
above this means the scale does not fit (DN above 20000 with scale 0.0001)."""

REFLECTANCE_MIN = -0.5
"""A median reflectance below this means the offset does not fit."""

SAMPLE_PIXELS = 250_000
"""About this many pixels of a band are looked at by the range check."""


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


def inputs_imagery(source: Mapping[str, Any], area: str | None = None) -> list[str]:
    """The local files an imagery source reads: its file, or each band's file.

    ``root`` is one file, a folder of ``<band>.tif`` files or a pattern with ``{band}``
    (one file per name of ``bands``), ``{area}`` replaced by the area's name. Inputs of
    ``acquire_imagery``, so that replacing a file reruns what depends on it; see
    :func:`local_files` for what is left out.
    """
    root = source.get("root")
    if not root or is_remote(root):
        return []
    root = area_root(root, area) if area else root
    bands = list(source.get("bands") or [])
    if "{band}" in root:
        return local_files([root.format(band=band) for band in bands])
    if Path(root).is_dir():  # as _local_bands reads it
        return local_files([str(Path(root, f"{band}.tif")) for band in bands])
    return local_files([root])


def inputs_labels(source: Mapping[str, Any], area: str | None = None) -> list[str]:
    """The local file a label source reads (an input of ``acquire_labels``)."""
    root = source.get("root")
    if not root or is_remote(root):
        return []
    return local_files([area_root(root, area) if area else root])


def local_files(paths: Sequence[str]) -> list[str]:
    """The paths that are files on this machine, ``file://`` dropped.

    URLs and GDAL's virtual paths (``/vsi...``) are not files Snakemake can watch; a file
    that does not exist is left out too, so that acquiring it fails with the source's
    error (naming the key and the fix) instead of Snakemake's bare missing input.
    """
    files = (gdal_path(path) for path in paths if not is_remote(path))
    return [path for path in files if not path.startswith("/vsi") and Path(path).is_file()]


def acquire_labels(
    area: str,
    bbox: BBox,
    *,
    root: str | Path | None,
    min_coverage: float,
    out: str | Path,
) -> Path:
    """Write an area's label codes: the window of one GeoTIFF (or URL) over its bbox.

    Args:
        area: area id (for messages and tags).
        bbox: (west, south, east, north) in degrees, checked.
        root: one raster of integer codes 0..255, in any CRS (``labels.root``).
        min_coverage: the fraction of the bbox the file must cover (``labels.min_coverage``).
        out: output GeoTIFF: uint8 codes on the file's pixel grid, colour table kept.

    Raises:
        ConfigError: when ``root`` is not set.
        SourceError: when the file does not exist or stays unreachable.
        DataError: when the file is corrupt, has no CRS, covers too little of the area,
            holds only nodata over it or a code does not fit in uint8 (nothing is written).

    """
    if not root:
        raise ConfigError(
            f"Area '{area}': labels.kind 'local' needs labels.root, the path of a "
            "GeoTIFF of label codes."
        )
    root = area_root(root, area)
    settings = HttpSettings.from_env()
    what = f"label raster of area '{area}'"
    with rasterio.Env(**gdal_options(settings)):
        if not exists(str(root), what, settings):
            raise SourceError(
                f"Area '{area}': the label raster '{root}' does not exist; set "
                "labels.root to an existing GeoTIFF of label codes."
            )
        path = gdal_path(root)
        footprint = gdal_read(path, what, partial(read_footprint, path, what), settings)
        check_coverage(area, bbox, str(root), footprint, min_coverage, "labels")
        read = partial(read_label_window, path, bbox, LABEL_MARGIN)
        windows = [gdal_read(path, what, read, settings)]
    if is_all_nodata(windows[0]):
        nodata = windows[0].nodata
        shown = "0: the file sets none" if nodata is None else f"{nodata:g}"
        raise DataError(
            f"Area '{area}': the label raster '{root}' holds only nodata ({shown}) over the "
            f"area's bbox {_rounded(bbox)}. Fix: give labels with codes over the area in "
            "labels.root (or set the file's nodata right, e.g. `gdal_edit.py -a_nodata "
            "<value>`), or correct the area's bbox."
        )
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
    min_coverage: float,
    resolution: float,
    out: str | Path,
) -> Path:
    """Put a local image (one file, or one file per band) on the area grid.

    ``root`` is one multi-band GeoTIFF (bands matched by description; taken in order
    only when the file has no descriptions), a folder of ``<band>.tif`` files or a path
    pattern with ``{band}``, in any CRS and resolution; its DN are converted with
    ``scale`` and ``offset`` and put on the area grid
    (:func:`~landcover.sources.windows.read_onto_grid`; no cloud mask). The output is
    encoded as the STAC composites are (uint16 DN, scale and offset).

    Raises:
        ConfigError: when the file's bands cannot be matched to ``bands``, or a band's
            values do not fit ``scale`` / ``offset``.
        DataError: when a file cannot be decoded, has no CRS, covers less than
            ``min_coverage`` of the bbox, or a band is all nodata.
        SourceError: when a remote file stays unreachable.

    """
    grid = area_grid(bbox, resolution)
    settings = HttpSettings.from_env()
    root = area_root(root, area)
    sources = _local_bands(area, root, list(bands), settings)
    what = f"imagery of area '{area}'"
    for path in dict.fromkeys(path for path, _ in sources):  # each file once
        footprint = gdal_read(path, what, partial(read_footprint, path, what), settings)
        check_coverage(area, bbox, url_of(path), footprint, min_coverage, "imagery")
    scaling = (scale, offset)
    return _acquire_local_imagery(area, grid, root, sources, bands, scaling, out, settings)


def _rounded(box: Sequence[float]) -> list[float]:
    """A lon/lat box for a message: 5 decimals (about 1 m)."""
    return [round(float(v), 5) for v in box]


def check_coverage(
    area: str,
    bbox: BBox,
    path: str,
    footprint: Footprint,
    min_coverage: float,
    section: str,
) -> None:
    """A local file must overlap the area, and cover at least ``min_coverage`` of its bbox.

    Raises:
        DataError: naming the area, the file, both boxes in lon/lat and the fix.

    """
    fraction = covered_fraction(bbox, footprint)
    if fraction > 0 and fraction >= min_coverage:
        return
    coverage = (
        "does not overlap the area"
        if fraction == 0
        else f"covers {fraction:.0%} of the area, less than {section}.min_coverage "
        f"({min_coverage:g})"
    )
    raise DataError(
        f"Area '{area}': the {section} file '{path}' {coverage}. The file's bounds are "
        f"{_rounded(footprint.lonlat)} and the area's bbox is {_rounded(bbox)} "
        f"([west, south, east, north] in degrees; the file's CRS is {footprint.crs}). Fix: "
        f"set {section}.root to a file that covers the area (or check that the file's CRS "
        f"is right), correct the area's bbox, or lower {section}.min_coverage."
    )


def band_key(name: str) -> str:
    """A band name compared loosely: case and spaces ignored, ``B2`` the same as ``B02``."""
    text = name.strip().upper()
    match = re.fullmatch(r"B0*(\d{1,2})(A?)", text)
    return f"B{int(match[1]):02d}{match[2]}" if match else text


def match_bands(descriptions: Sequence[str | None], bands: Sequence[str]) -> list[int]:
    """The 1-based index in a file of each configured band, matched by band description.

    A file without any description gives its bands in order, when it has as many as
    ``bands``. Names are compared with :func:`band_key`.

    Raises:
        ValueError: saying why the bands cannot be matched (counts differ without
            descriptions; a band not described, or described more than once).

    """
    keys = [band_key(d) if d and d.strip() else None for d in descriptions]
    if not any(keys):
        if len(keys) != len(bands):
            raise ValueError(
                f"it has no band descriptions and {len(keys)} band(s), not {len(bands)}"
            )
        return list(range(1, len(keys) + 1))
    found = {band: [i for i, key in enumerate(keys, 1) if key == band_key(band)] for band in bands}
    missing = [band for band, hits in found.items() if not hits]
    twice = [band for band, hits in found.items() if len(hits) > 1]
    problems = []
    if missing:
        problems.append(f"no band is described as {', '.join(missing)}")
    if twice:
        problems.append(f"more than one band is described as {', '.join(twice)}")
    if problems:
        raise ValueError("; ".join(problems))
    return [found[band][0] for band in bands]


def _local_bands(
    area: str, root: str, bands: Sequence[str], settings: HttpSettings
) -> list[tuple[str, int]]:
    """Return (GDAL path, band index) of each band of a local image.

    ``root`` is a multi-band GeoTIFF, a folder of ``<band>.tif`` files, or a path pattern
    with ``{band}``. A multi-band file's bands are matched by :func:`match_bands`; when
    they are taken in order (no descriptions), the log says which became which.

    Raises:
        ConfigError: when the file's bands cannot be matched to the band names.

    """
    if "{band}" in root:
        return [(gdal_path(root.format(band=band)), 1) for band in bands]
    if not is_remote(root) and Path(root).is_dir():
        return [(str(Path(root, f"{band}.tif")), 1) for band in bands]
    path = gdal_path(root)

    def describe() -> list[str | None]:
        with rasterio.open(path) as src:
            return list(src.descriptions)

    descriptions = gdal_read(path, f"imagery of area '{area}'", describe, settings)
    try:
        indexes = match_bands(descriptions, bands)
    except ValueError as err:
        raise ConfigError(
            f"Area '{area}': the bands of imagery file '{root}' cannot be matched to "
            f"imagery.bands: {err}. The file's band descriptions: {descriptions}; "
            f"imagery.bands: {list(bands)}. Fix: set the file's band descriptions to the "
            "band names (rasterio: `ds.descriptions = (...)` on the file opened 'r+'), list "
            "in imagery.bands the bands the file holds, or use a '{band}' pattern in "
            "imagery.root."
        ) from None
    if not any(descriptions):
        pairs = zip(indexes, bands, strict=True)
        taken = ", ".join(f"file band {index} -> {band}" for index, band in pairs)
        logger.warning(
            "area %s: imagery file '%s' has no band descriptions; its bands are taken in "
            "order as imagery.bands: %s",
            area,
            root,
            taken,
        )
    return [(path, index) for index in indexes]


def range_problem(dn: np.ndarray, scale: float, offset: float) -> str | None:
    """Why a band's values do not fit ``scale`` / ``offset``, or None when they do.

    Looks at up to :data:`SAMPLE_PIXELS` valid pixels (finite, not nodata): values no
    higher than 1.5 under an integer scale are reflectance already; a 95th percentile
    of reflectance above 2 means DN of another scale; a median below -0.5 means the
    offset does not fit.
    """
    step = max(1, int(np.sqrt(dn.size / SAMPLE_PIXELS)))
    sample = dn[::step, ::step] if dn.ndim == 2 else dn[::step]
    values = sample[np.isfinite(sample) & (sample != NODATA)].astype(np.float64)
    if not values.size:
        return None
    low, high = float(values.min()), float(values.max())
    if scale <= INTEGER_SCALE and high <= REFLECTANCE_LIKE:
        return (
            f"its values lie between {low:g} and {high:g}, as reflectance does, but "
            f"imagery.scale {scale:g} makes them reflectance of at most "
            f"{high * scale + offset:.2g}. Fix: for a file that holds reflectance set "
            "imagery.scale: 1 and imagery.offset: 0"
        )
    p95, median = np.percentile(values * scale + offset, [95, 50])
    if p95 > REFLECTANCE_MAX:
        return (
            f"with imagery.scale {scale:g} and imagery.offset {offset:g} a twentieth of its "
            f"pixels have reflectance above {p95:.2f} (DN up to {high:g}); surface "
            "reflectance stays below about 1.5. Fix: set imagery.scale / imagery.offset to "
            "your product's (reflectance = DN * scale + offset; Sentinel-2 as uint16: "
            "scale 0.0001, offset -0.1 for L2A from processing baseline 04.00)"
        )
    if median < REFLECTANCE_MIN:
        return (
            f"with imagery.scale {scale:g} and imagery.offset {offset:g} its median "
            f"reflectance is {median:.2f}. Fix: set imagery.offset to your product's "
            "(reflectance = DN * scale + offset; e.g. -0.1 for Sentinel-2 L2A from "
            "processing baseline 04.00, 0 before)"
        )
    return None


def _acquire_local_imagery(
    area: str,
    grid: Grid,
    root: str,
    sources: Sequence[tuple[str, int]],
    bands: Sequence[str],
    scaling: tuple[float, float],
    out: str | Path,
    settings: HttpSettings,
) -> Path:
    """Reproject a local image (one file, or one file per band) onto the area grid.

    Bands of any resolution and CRS are stacked on the grid (see :func:`read_onto_grid`);
    each band's values are checked against the scaling (:func:`range_problem`) before
    it is written.
    """
    scale, offset = scaling

    def layers() -> Any:
        for band, (path, index) in zip(bands, sources, strict=True):
            # the VRT turns the file's own nodata into NODATA
            what = f"band {band} of the imagery of area '{area}'"
            dn = read_onto_grid(path, grid, what, band=index, settings=settings)
            problem = range_problem(dn, scale, offset)
            if problem:
                raise ConfigError(
                    f"Area '{area}': band {band} (file band {index}) of imagery "
                    f"'{url_of(path)}' does not fit imagery.scale / imagery.offset: {problem}."
                )
            yield to_reflectance(dn, scale, offset, nodata=NODATA)

    tags = {
        "source": root,
        "items": json.dumps([]),
        "dates": json.dumps([]),
        "licence": "see the source of the local imagery",
        "area": area,
        "kind": "local",
    }
    nodata_fix = (
        "check that imagery.root is the image of this area and that its nodata value is "
        "right (the file's nodata, or DN 0, fills the area; `gdal_edit.py -a_nodata "
        "<value>` sets it), or correct the area's bbox."
    )
    with rasterio.Env(**gdal_options(settings)):
        write_imagery(
            area,
            grid,
            bands,
            layers(),
            tags,
            out,
            source=f"the local imagery '{root}'",
            nodata_fix=nodata_fix,
        )
    return Path(out)
