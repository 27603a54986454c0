"""Reading windows of rasters: label windows on the source's grid, bands onto an area grid.

Only the pixels over an area's bbox are read: label sources keep their own pixel grid
(a window snapped to it, mosaicked across tile borders on the tiles' common grid);
imagery bands are read through a ``WarpedVRT`` onto the area grid. A file without a CRS
is refused (:func:`require_crs`); a file's footprint (:func:`read_footprint`) tells how
much of an area it covers (:func:`covered_fraction`). Writers of the raw files
(:func:`write_labels`, :func:`write_imagery`) are shared by every source kind.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import CRSError
from rasterio.io import DatasetReader
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds, transform_geom
from rasterio.windows import Window, from_bounds

from landcover.errors import DataError
from landcover.grid import BBox, Grid
from landcover.io import atomic_path, gtiff_profile
from landcover.prepare.align import choose_resampling
from landcover.sources.composite import (
    ENCODE_OFFSET,
    ENCODE_SCALE,
    NODATA,
    encode_reflectance,
)
from landcover.sources.http import HttpSettings, gdal_read, url_of

logger = logging.getLogger(__name__)


LABEL_MARGIN = 2
"""Pixels of labels read beyond the bbox on each side."""

COMPOSITE_NODATA_FIX = "widen imagery.dates or raise imagery.max_cloud / imagery.max_items."
"""What to do when a band of a STAC composite has no clear pixel over an area."""


def require_crs(src: DatasetReader, what: str) -> CRS:
    """The CRS of an open raster, or an error that says how to assign one.

    Raises:
        DataError: naming the file when it has no CRS (or one GDAL cannot use), with the
            ``gdal_edit.py`` command that assigns one.

    """
    path = url_of(src.name)
    fix = (
        f"Fix: assign the CRS its coordinates are in, e.g. `gdal_edit.py -a_srs EPSG:32628 "
        f"{path}` (the EPSG code of your data: its UTM zone, or EPSG:4326 for degrees)"
    )
    if src.transform.is_identity:
        fix += ", and its corner coordinates with `-a_ullr <west> <north> <east> <south>`"
    if not src.crs:
        raise DataError(
            f"'{path}' ({what}) has no CRS, so where it lies is unknown. {fix}; or give the "
            "file as it came from its source."
        )
    try:
        transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    except CRSError as err:
        raise DataError(f"'{path}' ({what}) has a CRS that cannot be used ({err}). {fix}.") from err
    return src.crs


@dataclass(frozen=True)
class Footprint:
    """Where a raster lies: its CRS and bounds (left, bottom, right, top) in that CRS."""

    crs: CRS
    bounds: BBox

    @property
    def lonlat(self) -> BBox:
        """The bounds as (west, south, east, north) in degrees (an enclosing box)."""
        west, south, east, north = transform_bounds(
            self.crs, "EPSG:4326", *self.bounds, densify_pts=21
        )
        return (west, south, east, north)


def read_footprint(path: str, what: str) -> Footprint:
    """Open a raster and return its footprint (header only: no pixel is read).

    Raises:
        DataError: when the file has no CRS (see :func:`require_crs`).
        RasterioError: when GDAL cannot open it (see :func:`gdal_read`).

    """
    with rasterio.open(path) as src:
        return Footprint(require_crs(src, what), tuple(src.bounds))  # type: ignore[arg-type]


def covered_fraction(bbox: BBox, footprint: Footprint) -> float:
    """The fraction of a lon/lat bbox's area that a footprint covers, in the footprint's CRS.

    The bbox's edges are densified before they are projected, so a UTM file that covers
    exactly the area counts as covering all of it.
    """
    west, south, east, north = bbox
    box = shapely.segmentize(shapely.box(west, south, east, north), (east - west) / 20)
    try:
        area = shapely.geometry.shape(transform_geom("EPSG:4326", footprint.crs, box))
    except (CRSError, ValueError):
        return 0.0
    if area.is_empty or not np.isfinite(area.area) or area.area <= 0:
        return 0.0
    cover = area.intersection(shapely.box(*footprint.bounds))
    return float(cover.area / area.area)


def snap_window(bounds: BBox, transform: Affine, margin: int = 0) -> Window:
    """Return the integer window of a pixel grid that covers ``bounds``, plus ``margin`` pixels.

    Args:
        bounds: (left, bottom, right, top) in the grid's CRS.
        transform: the grid's affine transform (north-up).
        margin: extra pixels on every side.

    Returns:
        A window with integer offsets and lengths (offsets may be negative).

    """
    exact = from_bounds(*bounds, transform=transform)
    eps = 1e-3  # a bound within 1/1000 px of a pixel edge lies on it (float noise of transforms)
    c0 = math.floor(exact.col_off + eps) - margin
    r0 = math.floor(exact.row_off + eps) - margin
    c1 = math.ceil(exact.col_off + exact.width - eps) + margin
    r1 = math.ceil(exact.row_off + exact.height - eps) + margin
    return Window(c0, r0, c1 - c0, r1 - r0)


def clip_window(window: Window, width: int, height: int) -> tuple[Window, int, int] | None:
    """Return the part of an integer window inside a ``width`` x ``height`` raster.

    Returns:
        (inner window, its row offset in ``window``, its column offset in ``window``), or
        None when the window lies outside the raster.

    """
    c0, r0 = max(int(window.col_off), 0), max(int(window.row_off), 0)
    c1 = min(int(window.col_off + window.width), width)
    r1 = min(int(window.row_off + window.height), height)
    if c1 <= c0 or r1 <= r0:
        return None
    inner = Window(c0, r0, c1 - c0, r1 - r0)
    return inner, r0 - int(window.row_off), c0 - int(window.col_off)


@dataclass(frozen=True)
class LabelWindow:
    """Band 1 of a label raster over a window of its own pixel grid.

    Attributes:
        codes: the codes, (rows, cols); nodata where the window leaves the file.
        transform: affine transform of the window.
        crs: the file's CRS.
        nodata: the file's nodata (None when it has none: then 0 fills outside it).
        colormap: the colour table of band 1, if any.

    """

    codes: np.ndarray
    transform: Affine
    crs: Any
    nodata: float | None
    colormap: dict[int, tuple[int, ...]] | None


def read_label_window(path: str, bbox: BBox, margin: int = LABEL_MARGIN) -> LabelWindow:
    """Read the window of a label raster that covers a lon/lat bbox (plus ``margin`` px).

    Only that window is read (for a remote COG: only its tiles). The window is on the
    file's own pixel grid, so codes are copied, never resampled.

    Args:
        path: GDAL path of the raster.
        bbox: (west, south, east, north) in degrees.
        margin: extra pixels on every side.

    Raises:
        RasterioError: when GDAL cannot open or read the file (see :func:`gdal_read`).

    """
    with rasterio.open(path) as src:
        crs = require_crs(src, "label raster")
        bounds = transform_bounds("EPSG:4326", crs, *bbox, densify_pts=21)
        window = snap_window(bounds, src.transform, margin)
        fill = src.nodata if src.nodata is not None else 0
        codes = np.full((int(window.height), int(window.width)), fill, dtype=src.dtypes[0])
        inside = clip_window(window, src.width, src.height)
        if inside is not None:
            inner, row, col = inside
            codes[row : row + inner.height, col : col + inner.width] = src.read(1, window=inner)
        try:
            colormap = src.colormap(1)
        except ValueError:  # no colour table
            colormap = None
        return LabelWindow(
            codes=codes,
            transform=src.transform @ Affine.translation(window.col_off, window.row_off),
            crs=src.crs,
            nodata=src.nodata,
            colormap=colormap,
        )


def is_all_nodata(window: LabelWindow) -> bool:
    """Whether a label window holds no code: only the file's nodata (0 without one) or NaN."""
    codes = window.codes
    fill = window.nodata if window.nodata is not None else 0
    missing = np.isnan(codes) if codes.dtype.kind == "f" else np.zeros(codes.shape, bool)
    if not (isinstance(fill, float) and math.isnan(fill)):
        missing |= codes == fill
    return bool(missing.all())


def mosaic_windows(windows: Sequence[LabelWindow], what: str) -> LabelWindow:
    """Mosaic windows of one pixel grid (WorldCover tiles): the first valid code wins.

    Raises:
        DataError: when the windows are not the same pixels (the files are not on one grid).

    """
    first = windows[0]
    res = abs(first.transform.a)
    fill = first.nodata if first.nodata is not None else 0
    codes = first.codes.copy()
    for other in windows[1:]:
        t0, t1 = first.transform, other.transform
        same = (
            other.codes.shape == codes.shape
            and abs(t1.c - t0.c) < 1e-3 * res
            and abs(t1.f - t0.f) < 1e-3 * res
            and math.isclose(t1.a, t0.a, rel_tol=1e-9)
            and math.isclose(t1.e, t0.e, rel_tol=1e-9)
        )
        if not same:
            raise DataError(
                f"{what}: the files are not on one pixel grid (window {t1} vs {t0}); "
                "WorldCover tiles share one. Fix: use unmodified tiles in labels.root."
            )
        gap = codes == fill
        codes[gap] = other.codes[gap]
    colormap = next((w.colormap for w in windows if w.colormap), None)
    return LabelWindow(codes, first.transform, first.crs, first.nodata, colormap)


def label_codes_uint8(
    codes: np.ndarray, nodata: float | None, where: str
) -> tuple[np.ndarray, int]:
    """Return label codes as uint8 and the uint8 nodata code.

    Codes must be whole numbers in 0..255 (WorldCover's are 10..100). The source's
    nodata is kept when it fits in uint8; otherwise (e.g. 65535, -1 or NaN) its pixels
    become 0, or 255 when 0 is a code in use. A file without nodata has 0 as nodata
    (as WorldCover).

    Args:
        codes: integer or float codes.
        nodata: the source's nodata (None: 0).
        where: the area and file, for the error message.

    Raises:
        DataError: naming ``where`` when a code is not a whole number in 0..255, or no
            uint8 value is left for nodata.

    """
    if nodata is None:
        nodata = 0
    missing = np.isnan(codes) if codes.dtype.kind == "f" else np.zeros(codes.shape, bool)
    if not (isinstance(nodata, float) and math.isnan(nodata)):
        missing |= codes == nodata
    values = codes[~missing]
    bad = values[(values < 0) | (values > 255) | (values != np.round(values))]
    if bad.size:
        shown = sorted({float(v) if codes.dtype.kind == "f" else int(v) for v in bad[:10_000]})
        raise DataError(
            f"{where}: label code(s) {shown[:10]} are not whole numbers in 0..255; labels are "
            "written as uint8. Fix: recode the label raster to codes 0..255 (and set its "
            "nodata), e.g. with rasterio or gdal_calc.py."
        )
    if float(nodata).is_integer() and 0 <= nodata <= 255:
        out_nodata = int(nodata)
    else:
        used = set(np.unique(values).astype(int).tolist())
        free = [value for value in (0, 255) if value not in used]
        if not free:
            raise DataError(
                f"{where}: nodata {nodata} does not fit in uint8 and both 0 and 255 are codes "
                "in use. Fix: recode the label raster so that 0 or 255 marks nodata."
            )
        out_nodata = free[0]
    out = np.where(missing, out_nodata, codes).astype(np.uint8)
    return out, out_nodata


def read_onto_grid(
    path: str,
    grid: Grid,
    what: str,
    band: int = 1,
    resampling: Resampling | None = None,
    settings: HttpSettings | None = None,
) -> np.ndarray:
    """Read one band of a raster onto a target grid, fetching only what the grid needs.

    A ``WarpedVRT`` reprojects on the fly. With ``resampling=None`` the method follows
    :func:`landcover.prepare.align.choose_resampling`: on a grid aligned to the source's (the
    area grid is snapped to 60 m like Sentinel-2 tiles, so 10/20/60 m bands are) nearest
    copies 10 m pixels exactly and repeats each 20 m pixel 2 x 2 and each 60 m pixel
    6 x 6; a source in another CRS or off the grid is resampled bilinearly, a finer one
    averaged. Pixels outside the source are 0.

    Args:
        path: GDAL path of the raster.
        grid: the target grid.
        what: what the file is, for error messages.
        band: 1-based band index.
        resampling: resampling method (None: chosen from the grids, see above).
        settings: HTTP retries and timeouts (default: from the environment).

    Raises:
        DataError: when the file cannot be decoded or has too few bands.
        SourceError: when a remote file stays unreachable (the URL is named).

    """

    def read() -> np.ndarray:
        with rasterio.open(path) as src:
            if band > src.count:
                raise DataError(
                    f"{what} '{url_of(path)}' has {src.count} band(s); band {band} was asked "
                    "for. Check the band list or the file."
                )
            require_crs(src, what)
            method = resampling or choose_resampling(src.crs, src.transform, grid)
            with WarpedVRT(
                src,
                crs=grid.crs,
                transform=grid.transform,
                width=grid.width,
                height=grid.height,
                resampling=method,
                nodata=NODATA,
            ) as vrt:
                return vrt.read(band)

    return gdal_read(path, what, read, settings)


def write_imagery(
    area: str,
    grid: Grid,
    bands: Sequence[str],
    layers: Any,
    tags: dict[str, str],
    out: str | Path,
    *,
    source: str = "the composite",
    nodata_fix: str = COMPOSITE_NODATA_FIX,
) -> None:
    """Write encoded bands one at a time (``layers`` yields reflectance per band).

    Args:
        area: area id (for messages and tags).
        grid: the area grid.
        bands: band names, in output order.
        layers: yields each band's reflectance (NaN = nodata) on ``grid``.
        tags: provenance tags.
        out: the output GeoTIFF.
        source: what the bands come from, for the message of an all-nodata band.
        nodata_fix: the fix that message gives (one that fits the source kind).

    Raises:
        DataError: naming the area and band when a band is entirely nodata (nothing is
            written).

    """
    profile = gtiff_profile(
        grid.crs,
        grid.transform,
        grid.shape,
        len(bands),
        "uint16",
        NODATA,
        predictor=2,
        interleave="band",
    )
    with atomic_path(out) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        for index, (band, refl) in enumerate(zip(bands, layers, strict=True), start=1):
            dn = encode_reflectance(refl)
            if not dn.any():
                raise DataError(
                    f"Area '{area}': band {band} of {source} is entirely nodata. Fix: {nodata_fix}"
                )
            dst.write(dn, index)
            dst.set_band_description(index, band)
            logger.info(
                "area %s: band %s, %.1f%% of pixels valid", area, band, 100 * np.mean(dn > 0)
            )
        dst.scales = [ENCODE_SCALE] * len(bands)
        dst.offsets = [ENCODE_OFFSET] * len(bands)
        dst.update_tags(**tags)
    logger.info("area %s: wrote imagery %s (%d x %d px)", area, out, grid.width, grid.height)


def write_labels(
    area: str,
    bbox: BBox,
    windows: Sequence[LabelWindow],
    urls: Sequence[str],
    tags: dict[str, str],
    kind: str,
    out: str | Path,
) -> Path:
    """Mosaic label windows and write them as uint8 codes on the source's grid.

    The colour table of the source is kept; ``tags`` (provenance) are completed with the
    area, its bbox and the source kind.
    """
    where = f"Area '{area}', labels {list(urls)}"
    window = mosaic_windows(windows, where)
    codes, nodata = label_codes_uint8(window.codes, window.nodata, where)
    if not (codes != nodata).any():
        logger.warning("area %s: the labels are all nodata over bbox %s", area, list(bbox))
    tags = tags | {"area": area, "bbox": json.dumps(list(bbox)), "kind": kind}
    profile = gtiff_profile(window.crs, window.transform, codes.shape, 1, "uint8", nodata)
    with atomic_path(out) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        if window.colormap:  # before the pixels: GDAL cannot set a palette once blocks exist
            dst.write_colormap(1, window.colormap)
        dst.write(codes, 1)
        dst.update_tags(**tags)
    logger.info("area %s: wrote labels %s (%d x %d px)", area, out, *codes.shape[::-1])
    return Path(out)


def write_clear_count(
    area: str, grid: Grid, count: np.ndarray, tags: dict[str, str], out: str | Path
) -> Path:
    """Write the clear-look count per pixel (uint8, no nodata: 0 means no clear look).

    Args:
        area: area id (for the log).
        grid: the area grid.
        count: uint8 counts on ``grid`` (:func:`~landcover.sources.composite.clear_count`).
        tags: provenance tags.
        out: the output GeoTIFF.

    """
    profile = gtiff_profile(grid.crs, grid.transform, grid.shape, 1, "uint8", None)
    with atomic_path(out) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        dst.write(count, 1)
        dst.set_band_description(1, "clear_looks")
        dst.update_tags(**tags)
    logger.info("area %s: wrote clear-look counts %s", area, out)
    return Path(out)
