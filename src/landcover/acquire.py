"""Acquisition: an area's labels (ESA WorldCover) and Sentinel-2 L2A composite, read windowed.

Only the pixels over the area's bbox are read: for WorldCover, the window of each
3-degree tile that covers the bbox (mosaicked across tile borders on the tiles' common
pixel grid); for Sentinel-2, each band COG through a ``WarpedVRT`` onto the area grid.
Remote files (``http(s)://``) are read through GDAL's ``/vsicurl/``, which fetches only
the COG tiles a window needs, with the HTTP settings of :func:`gdal_options`; STAC API
searches go through pystac-client with the same retries (:func:`http_retry`). The array
steps (masks, median, encoding) live in ``landcover.composite``.

Remote failures are never silent: a WorldCover tile is skipped only when the server
answers 404 (no tile over open ocean); any other failure, after the retries, raises a
:class:`~landcover.errors.SourceError` that names the URL, and no output is written.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import pystac
import pystac_client
import rasterio
import requests
from affine import Affine
from pystac_client.exceptions import APIError
from pystac_client.stac_api_io import StacApiIO
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window, from_bounds
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from landcover.align import choose_resampling
from landcover.composite import (
    ENCODE_OFFSET,
    ENCODE_SCALE,
    NODATA,
    Acquisition,
    boa_offset,
    clear_mask,
    date_range,
    encode_reflectance,
    median_composite,
    mosaic_first,
    select_acquisitions,
    to_reflectance,
)
from landcover.errors import ConfigError, DataError, SourceError
from landcover.grid import BBox, Grid, area_grid, check_bbox, worldcover_tiles
from landcover.io import atomic_path
from landcover.sentinel2 import ASSET_KEYS

logger = logging.getLogger(__name__)

T = TypeVar("T")

WORLDCOVER_URL = "https://esa-worldcover.s3.eu-central-1.amazonaws.com"
"""The public bucket of ESA WorldCover (no credentials needed)."""

EARTH_SEARCH_URL = "https://earth-search.aws.element84.com/v1"
"""Element 84's Earth Search STAC API (Sentinel-2 L2A COGs on AWS; no credentials needed)."""

WORLDCOVER_YEARS = {"v100": 2020, "v200": 2021}
"""WorldCover product version -> map year."""

WORLDCOVER_DOIS = {"v100": "10.5281/zenodo.5571936", "v200": "10.5281/zenodo.7254221"}
"""WorldCover product version -> DOI of the dataset."""

WORLDCOVER_LICENCE = (
    "CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/): © ESA WorldCover project {year} / "
    "Contains modified Copernicus Sentinel data ({year}) processed by ESA WorldCover consortium"
)
SENTINEL2_LICENCE = (
    "Copernicus Sentinel data, see "
    "https://sentinels.copernicus.eu/documents/247904/690755/Sentinel_Data_Legal_Notice"
)

LABEL_MARGIN = 2
"""Pixels of labels read beyond the bbox on each side."""

MAX_SEARCH_ITEMS = 1000
"""Upper bound on the items a STAC API search pages through."""

SEARCH_PAGE_SIZE = 100
"""Items per page of a STAC API search (pystac-client follows the API's next links)."""

REOPEN_ATTEMPTS = 3
"""Times a remote file is opened and read before giving up. GDAL retries HTTP 429/5xx
and timeouts itself (``GDAL_HTTP_MAX_RETRY``) but not a connection dropped without an
answer, nor a transfer cut short; those are retried here by opening the file again."""

RETRY_STATUS = (429, 500, 502, 503, 504)
"""HTTP statuses retried by the STAC client and the existence probe (as GDAL does)."""


# --------------------------------------------------------------------------- HTTP


@dataclass(frozen=True)
class HttpSettings:
    """Retries and timeouts of every remote read: GDAL's ``/vsicurl/`` and the STAC client.

    They are read from GDAL's own environment variables (:meth:`from_env`), so that one
    setting drives both GDAL and the STAC client, and a user who knows GDAL finds them.

    Attributes:
        max_retry: retries of a failed request (HTTP 429/5xx, timeouts, dropped or
            reset connections), ``GDAL_HTTP_MAX_RETRY``.
        retry_delay: seconds before the first retry, doubled at each following one,
            ``GDAL_HTTP_RETRY_DELAY``.
        timeout: seconds one request may take, ``GDAL_HTTP_TIMEOUT``.
        connect_timeout: seconds to establish a connection, ``GDAL_HTTP_CONNECTTIMEOUT``.

    """

    max_retry: int = 5
    retry_delay: float = 1.0
    timeout: float = 120.0
    connect_timeout: float = 20.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> HttpSettings:
        """Read the settings from the environment, with the class defaults for unset ones.

        Raises:
            ConfigError: when a variable is set but not a number.

        """
        env = os.environ if environ is None else environ

        def number(name: str, default: float) -> float:
            value = env.get(name, "")
            if not value.strip():
                return default
            try:
                return float(value)
            except ValueError as err:
                raise ConfigError(
                    f"Environment variable {name}={value!r} is not a number; unset it or set "
                    f"a number (default {default:g}, see docs/sources.md)."
                ) from err

        return cls(
            max_retry=max(int(number("GDAL_HTTP_MAX_RETRY", cls.max_retry)), 0),
            retry_delay=max(number("GDAL_HTTP_RETRY_DELAY", cls.retry_delay), 0.0),
            timeout=number("GDAL_HTTP_TIMEOUT", cls.timeout),
            connect_timeout=number("GDAL_HTTP_CONNECTTIMEOUT", cls.connect_timeout),
        )


def gdal_options(
    settings: HttpSettings | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """GDAL configuration options for windowed reads of remote COGs.

    * ``GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR``: a remote file is opened without
      listing its "directory" (S3 listings are slow and useless here);
    * ``GDAL_HTTP_MULTIRANGE=YES``, ``GDAL_HTTP_MERGE_CONSECUTIVE_RANGES=YES``: the COG
      tiles of a window are fetched in parallel range requests, neighbouring ones merged;
    * ``VSI_CACHE=TRUE``: blocks read once are kept per open file;
    * ``CPL_VSIL_CURL_NON_CACHED=/vsicurl/``: GDAL does not remember a failed request
      (or a file's size) from one open to the next, so a file opened again after a
      dropped connection is really asked for again;
    * ``GDAL_HTTP_MAX_RETRY``, ``GDAL_HTTP_RETRY_DELAY`` (GDAL doubles it at each retry),
      ``GDAL_HTTP_TIMEOUT``, ``GDAL_HTTP_CONNECTTIMEOUT`` from :class:`HttpSettings`.

    Each option set in the environment wins over the value here. Harmless for local files.

    Args:
        settings: retries and timeouts (default: :meth:`HttpSettings.from_env`).
        environ: the environment (default: ``os.environ``).

    """
    env = os.environ if environ is None else environ
    settings = settings or HttpSettings.from_env(env)
    options = {
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        "GDAL_HTTP_MULTIRANGE": "YES",
        "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
        "VSI_CACHE": "TRUE",
        "CPL_VSIL_CURL_NON_CACHED": "/vsicurl/",
        "GDAL_HTTP_MAX_RETRY": str(settings.max_retry),
        "GDAL_HTTP_RETRY_DELAY": f"{settings.retry_delay:g}",
        # GDAL takes whole seconds here
        "GDAL_HTTP_TIMEOUT": str(max(math.ceil(settings.timeout), 1)),
        "GDAL_HTTP_CONNECTTIMEOUT": str(max(math.ceil(settings.connect_timeout), 1)),
    }
    return {name: env.get(name, value) for name, value in options.items()}


def http_retry(settings: HttpSettings, raise_on_status: bool = True) -> Retry:
    """The urllib3 retry policy of the STAC client and the existence probe.

    Retries connection errors, dropped connections and HTTP 429/5xx, for every method
    (a STAC search POST is read-only), with exponential backoff from
    ``settings.retry_delay`` and the server's ``Retry-After`` respected.
    """
    return Retry(
        total=settings.max_retry,
        connect=settings.max_retry,
        read=settings.max_retry,
        status=settings.max_retry,
        other=settings.max_retry,
        backoff_factor=settings.retry_delay,
        status_forcelist=RETRY_STATUS,
        allowed_methods=None,
        raise_on_status=raise_on_status,
        respect_retry_after_header=True,
    )


def http_session(settings: HttpSettings) -> requests.Session:
    """A requests session that retries as :func:`http_retry` says."""
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=http_retry(settings, raise_on_status=False))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _network_fix(settings: HttpSettings) -> str:
    return (
        f"(tried with {settings.max_retry} HTTP retries). Fix: check the network connection "
        "and the URL (labels.root / imagery.root), then rerun: the job can simply be run "
        "again. Retries and timeouts: GDAL_HTTP_MAX_RETRY, GDAL_HTTP_RETRY_DELAY, "
        "GDAL_HTTP_TIMEOUT (see docs/sources.md)."
    )


def _http_request(
    url: str, what: str, settings: HttpSettings, method: str, **kwargs: Any
) -> requests.Response:
    """Send one request with the retries of :func:`http_retry`; return the last answer.

    Raises:
        SourceError: naming the URL when no answer comes (connection refused, dropped,
            timed out) after the retries.

    """
    timeout = (settings.connect_timeout, settings.timeout)
    try:
        with http_session(settings) as session:
            response = session.request(method, url, timeout=timeout, **kwargs)
            response.close()
            return response
    except requests.RequestException as err:
        raise SourceError(f"Cannot reach {what} at {url}: {err} {_network_fix(settings)}") from err


def _status_error(what: str, url: str, response: requests.Response, settings: HttpSettings) -> str:
    return (
        f"{what} at {url} answered HTTP {response.status_code} {response.reason} "
        f"{_network_fix(settings)}"
    )


def remote_exists(url: str, what: str, settings: HttpSettings) -> bool:
    """Whether a remote file exists: True on 2xx, False only on HTTP 404.

    Asked with a HEAD request, retried on connection errors and HTTP 429/5xx.

    Raises:
        SourceError: naming the URL when the server stays unreachable or answers
            anything else than 2xx or 404 (e.g. 403 or 503 after the retries).

    """
    response = _http_request(url, what, settings, "HEAD", allow_redirects=True)
    if response.status_code == 404:
        return False
    if response.ok:
        return True
    raise SourceError(_status_error(what, url, response, settings))


def check_remote_readable(url: str, what: str, settings: HttpSettings) -> None:
    """Fetch the first KiB of a remote file, as GDAL would, retrying transient failures.

    Used after GDAL failed on a URL, to tell a failing server from a corrupt file.

    Raises:
        SourceError: naming the URL when the server stays unreachable or answers with an
            error status.

    """
    # streamed: a server that ignores the range sends no more than what is read (nothing)
    response = _http_request(
        url, what, settings, "GET", headers={"Range": "bytes=0-1023"}, stream=True
    )
    if not response.ok:
        raise SourceError(_status_error(what, url, response, settings))


# --------------------------------------------------------------------------- paths


def is_remote(path: str | Path) -> bool:
    """Whether a path is an ``http(s)://`` URL."""
    return str(path).startswith(("http://", "https://"))


def gdal_path(href: str | Path) -> str:
    """Return the path GDAL opens for an href: ``/vsicurl/`` before URLs, ``file://`` dropped."""
    href = str(href)
    if is_remote(href):
        return f"/vsicurl/{href}"
    if href.startswith("file://"):
        return href[len("file://") :]
    return href


def join_path(root: str | Path, *parts: str) -> str:
    """Join path parts onto a local folder or a URL."""
    if is_remote(root):
        return "/".join([str(root).rstrip("/"), *parts])
    return str(Path(root).joinpath(*parts))


def worldcover_path(root: str | Path, version: str, tile: str) -> str:
    """Path (or URL) of a WorldCover map tile under ``root``, in the public layout.

    >>> worldcover_path("https://example.org", "v200", "N15W018")
    'https://example.org/v200/2021/map/ESA_WorldCover_10m_2021_v200_N15W018_Map.tif'

    Raises:
        ConfigError: when the version is not a known WorldCover release.

    """
    if version not in WORLDCOVER_YEARS:
        raise ConfigError(
            f"labels.version '{version}' is not a WorldCover release; use one of "
            f"{sorted(WORLDCOVER_YEARS)}."
        )
    year = WORLDCOVER_YEARS[version]
    name = f"ESA_WorldCover_10m_{year}_{version}_{tile}_Map.tif"
    return join_path(root, version, str(year), "map", name)


def _exists(path: str, what: str, settings: HttpSettings) -> bool:
    """Whether a local file or a URL exists (a URL: only HTTP 404 says no)."""
    if is_remote(path):
        return remote_exists(path, what, settings)
    return Path(path).exists()


# --------------------------------------------------------------------------- reading


_GDAL_RETRIED = re.compile(r"HTTP response code: (429|5\d\d)")
_DEFINITIVE = re.compile(r"HTTP response code: 4\d\d")


def _url(path: str) -> str:
    return path.removeprefix("/vsicurl/")


def gdal_read(
    path: str, what: str, read: Callable[[], T], settings: HttpSettings | None = None
) -> T:
    """Run a GDAL read of ``path`` with clear errors, retrying a remote file's failures.

    GDAL retries HTTP 429/5xx and timeouts of each request itself; a remote read that
    still fails for another reason (a dropped connection, a transfer cut short) is
    opened and read again, up to :data:`REOPEN_ATTEMPTS` times.

    Args:
        path: the GDAL path (``/vsicurl/https://...`` for a URL).
        what: what the file is, for messages.
        read: opens ``path`` and reads it; raises ``RasterioError`` on failure.
        settings: retries and timeouts (default: from the environment).

    Raises:
        SourceError: naming the URL when a remote file stays unreachable or is not found.
        DataError: naming the file when it cannot be decoded (missing, corrupt, cut off).

    """
    settings = settings or HttpSettings.from_env()
    remote = path.startswith("/vsicurl/")
    attempts = REOPEN_ATTEMPTS if remote else 1
    for attempt in range(1, attempts + 1):
        try:
            return read()
        except RasterioError as err:
            text = str(err)
            again = not (_GDAL_RETRIED.search(text) or _DEFINITIVE.search(text))
            if remote and attempt < attempts and again:
                delay = settings.retry_delay * 2 ** (attempt - 1)
                logger.warning(
                    "%s: %s; opening it again in %g s (attempt %d of %d)",
                    _url(path),
                    text,
                    delay,
                    attempt + 1,
                    attempts,
                )
                time.sleep(delay)
                continue
            if remote and _DEFINITIVE.search(text):
                raise SourceError(
                    f"{what} at {_url(path)} cannot be fetched: {text}. Fix: check the URL "
                    "(labels.root / imagery.root, the STAC item's asset href)."
                ) from err
            if remote and _GDAL_RETRIED.search(text):
                raise SourceError(
                    f"Cannot read {what} from {_url(path)}: {text} {_network_fix(settings)}"
                ) from err
            if remote:
                # GDAL's last message often hides the cause ("not recognized as being in a
                # supported file format" after a failed range request): ask the server, and
                # raise a SourceError naming the URL if it fails
                check_remote_readable(_url(path), what, settings)
            raise DataError(
                f"Cannot read {what} '{_url(path)}': {text}. The file is missing, corrupt or "
                "cut off; fix or re-download it (or rebuild the demo bucket)."
            ) from err
    raise AssertionError("unreachable")  # pragma: no cover


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
        bounds = transform_bounds("EPSG:4326", src.crs, *bbox, densify_pts=21)
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
    :func:`landcover.align.choose_resampling`: on a grid aligned to the source's (the
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
                    f"{what} '{_url(path)}' has {src.count} band(s); band {band} was asked "
                    "for. Check the band list or the file."
                )
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


# --------------------------------------------------------------------------- labels


def acquire_labels(
    area: str,
    bbox: Sequence[float],
    kind: Literal["demo", "worldcover", "local"],
    root: str | Path | None,
    version: str = "v200",
    out: str | Path = "labels.tif",
    margin: int = LABEL_MARGIN,
) -> Path:
    """Write an area's label codes: a window of the source over its bbox.

    Args:
        area: area id (for messages and tags).
        bbox: (west, south, east, north) in degrees.
        kind: ``"demo"`` (``root`` = the demo bucket folder) or ``"worldcover"``
            (``root`` = the WorldCover bucket URL or a local mirror; default the
            public bucket), both in the public WorldCover layout; ``"local"``: ``root``
            is one GeoTIFF (or URL) of integer codes 0..255 in any CRS.
        root: where the source is (see ``kind``).
        version: WorldCover release, ``"v100"`` (2020) or ``"v200"`` (2021).
        out: output GeoTIFF: uint8 codes on the source's pixel grid, colour table kept.
        margin: pixels read beyond the bbox on each side.

    Returns:
        The output path.

    Raises:
        SourceError: when no tile exists over the bbox, or a source stays unreachable
            (only HTTP 404 means "no WorldCover tile here"; other failures are errors).
        DataError: when a file is corrupt or a code does not fit in uint8.
        ConfigError: on an unknown kind or version.

    """
    box = check_bbox(tuple(bbox), area)  # type: ignore[arg-type]
    settings = HttpSettings.from_env()
    with rasterio.Env(**gdal_options(settings)):
        match kind:
            case "demo" | "worldcover":
                if kind == "demo" and not root:
                    raise ConfigError(
                        f"Area '{area}': labels.kind 'demo' needs the demo bucket folder as root "
                        "(demo.root)."
                    )
                base = root or WORLDCOVER_URL
                windows, urls = _worldcover_windows(
                    area, box, base, version, kind, margin, settings
                )
                year = WORLDCOVER_YEARS[version]
                tags = {
                    "source": json.dumps(urls),
                    "version": version,
                    "year": str(year),
                    "doi": WORLDCOVER_DOIS[version],
                    "licence": WORLDCOVER_LICENCE.format(year=year),
                }
            case "local":
                if not root:
                    raise ConfigError(
                        f"Area '{area}': labels.kind 'local' needs labels.root, the path of a "
                        "GeoTIFF of label codes."
                    )
                what = f"label raster of area '{area}'"
                if not _exists(str(root), what, settings):
                    raise SourceError(
                        f"Area '{area}': the label raster '{root}' does not exist; set "
                        "labels.root to an existing GeoTIFF of label codes."
                    )
                path = gdal_path(root)
                windows = [
                    gdal_read(path, what, partial(read_label_window, path, box, margin), settings)
                ]
                urls = [str(root)]
                tags = {"source": json.dumps(urls)}
            case _:
                raise ConfigError(
                    f"labels.kind '{kind}' is unknown; use 'demo', 'worldcover' or 'local'."
                )
    where = f"Area '{area}', labels {urls}"
    window = mosaic_windows(windows, where)
    codes, nodata = label_codes_uint8(window.codes, window.nodata, where)
    if not (codes != nodata).any():
        logger.warning("area %s: the labels are all nodata over bbox %s", area, list(box))
    tags |= {"area": area, "bbox": json.dumps(list(box)), "kind": kind}
    profile = _profile(
        window.crs, window.transform, codes.shape, count=1, dtype="uint8", nodata=nodata
    )
    with atomic_path(out) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        if window.colormap:  # before the pixels: GDAL cannot set a palette once blocks exist
            dst.write_colormap(1, window.colormap)
        dst.write(codes, 1)
        dst.update_tags(**tags)
    logger.info("area %s: wrote labels %s (%d x %d px)", area, out, *codes.shape[::-1])
    return Path(out)


def _worldcover_windows(
    area: str,
    bbox: BBox,
    root: str | Path,
    version: str,
    kind: str,
    margin: int,
    settings: HttpSettings,
) -> tuple[list[LabelWindow], list[str]]:
    """Read the window of each WorldCover tile over a bbox; skip tiles that do not exist.

    A tile does not exist when its file is absent or its URL answers HTTP 404 (no tile
    over open ocean); any other failure is an error.

    Raises:
        SourceError: when no tile exists, or a tile stays unreachable.

    """
    paths = [(tile, worldcover_path(root, version, tile)) for tile, _ in worldcover_tiles(bbox)]
    windows, urls = [], []
    for tile, path in paths:
        what = f"WorldCover tile {tile} (area '{area}')"
        if not _exists(path, what, settings):
            logger.warning(
                "area %s: WorldCover tile %s not found at %s (no tile over open ocean); skipped",
                area,
                tile,
                path,
            )
            continue
        logger.info("area %s: reading the window of %s from %s", area, tile, path)
        source = gdal_path(path)
        windows.append(
            gdal_read(
                source,
                what,
                partial(read_label_window, source, bbox, margin),
                settings,
            )
        )
        urls.append(path)
    if not windows:
        fix = (
            "rebuild the demo bucket (snakemake make_demo_bucket) or set labels.root to it"
            if kind == "demo"
            else "check labels.root and labels.version; WorldCover has no tiles over open "
            "ocean, so move the area's bbox onto land"
        )
        raise SourceError(
            f"Area '{area}': no WorldCover {version} tile found over bbox {list(bbox)}; "
            f"looked for {[p for _, p in paths]}. Fix: {fix}."
        )
    return windows, urls


def _profile(
    crs: Any,
    transform: Affine,
    shape: tuple[int, ...],
    count: int,
    dtype: Any,
    nodata: float,
    **extra: Any,
) -> dict[str, Any]:
    """Return a tiled, deflate-compressed GeoTIFF profile."""
    return {
        "driver": "GTiff",
        "crs": crs,
        "transform": transform,
        "height": shape[-2],
        "width": shape[-1],
        "count": count,
        "dtype": np.dtype(dtype).name,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "bigtiff": "IF_SAFER",
        **extra,
    }


# --------------------------------------------------------------------------- imagery


def acquire_imagery(
    area: str,
    bbox: Sequence[float],
    kind: Literal["demo", "stac", "local"],
    root: str | Path,
    collection: str = "sentinel-2-l2a",
    dates: Sequence[str] = ("2024-01-01", "2024-03-31"),
    max_cloud: float = 70,
    max_items: int = 4,
    bands: Sequence[str] = ("B02", "B03", "B04", "B08"),
    resolution: float = 10,
    out: str | Path = "imagery.tif",
    scale: float = 1e-4,
    offset: float = 0.0,
) -> Path:
    """Write an area's cloud-masked median Sentinel-2 L2A composite on its grid.

    Items come from a static STAC catalog (``kind="demo"``, ``{root}/stac/catalog.json``)
    or a STAC API search (``kind="stac"``, ``root`` = the API URL, default Earth Search;
    the API filters bbox, dates and cloud cover). Those that touch the
    bbox, lie within ``dates`` and have ``eo:cloud_cover <= max_cloud`` are grouped by
    acquisition (platform and day) and the ``max_items`` clearest acquisitions are kept.
    Each band is read onto ``area_grid(bbox, resolution)``, masked with the SCL band
    (``landcover.sentinel2.SCL_MASK``) and nodata, converted to reflectance (asset scale,
    :func:`~landcover.composite.boa_offset`) and reduced with a per-pixel median. The
    output is uint16 DN = round(reflectance * 10000) + 1000 with band scale 0.0001 and
    offset -0.1, nodata 0 where no clear observation.

    ``kind="local"``: ``root`` is one multi-band GeoTIFF (bands matched by description,
    else taken in order), a folder of ``<band>.tif`` files or a path pattern with
    ``{band}``, in any CRS and resolution; its DN are converted with ``scale`` and
    ``offset`` and put on the area grid (:func:`read_onto_grid`; no cloud mask).

    Remote files are read through ``/vsicurl/`` with :func:`gdal_options`; transient
    HTTP failures are retried (:class:`HttpSettings`) and the output is written
    atomically, so a failure leaves no file.

    Args:
        area: area id (for messages and tags).
        bbox: (west, south, east, north) in degrees.
        kind: ``"demo"``, ``"stac"`` or ``"local"``.
        root: demo bucket folder, STAC API URL, or local file / pattern.
        collection: STAC collection id.
        dates: inclusive ``[start, end]`` as ``"YYYY-MM-DD"``.
        max_cloud: highest accepted ``eo:cloud_cover`` (percent).
        max_items: number of acquisitions in the median.
        bands: band names in output order (``B02`` ...).
        resolution: output pixel size in metres.
        out: output GeoTIFF.
        scale: DN scale of ``kind="local"`` files.
        offset: reflectance offset of ``kind="local"`` files.

    Returns:
        The output path.

    Raises:
        SourceError: when the catalog / API / an asset stays unreachable (the URL is
            named) or no item matches.
        DataError: when an asset cannot be decoded or the composite is all nodata.
        ConfigError: on an unknown kind or band.

    """
    box = check_bbox(tuple(bbox), area)  # type: ignore[arg-type]
    bands = list(bands)
    grid = area_grid(box, resolution)
    settings = HttpSettings.from_env()
    if kind == "local":
        return _acquire_local_imagery(area, grid, root, bands, scale, offset, out, settings)
    unknown = [b for b in bands if b not in ASSET_KEYS or b == "SCL"]
    if unknown:
        allowed = [b for b in ASSET_KEYS if b != "SCL"]
        raise ConfigError(f"imagery.bands: unknown band(s) {unknown}; choose from {allowed}.")
    span = date_range(dates)
    match kind:
        case "demo":
            items = _catalog_items(area, root, collection)
            source = f"static STAC catalog {join_path(root, 'stac', 'catalog.json')}"
        case "stac":
            url = str(root or EARTH_SEARCH_URL)
            items = _search_items(area, box, url, collection, span, max_cloud, settings)
            source = f"STAC API {url}"
        case _:
            raise ConfigError(f"imagery.kind '{kind}' is unknown; use 'demo', 'stac' or 'local'.")
    source += f", collection {collection}"
    acquisitions = select_acquisitions(items, box, span, max_cloud, max_items)
    if not acquisitions:
        raise SourceError(
            f"Area '{area}': no {collection} item in {source} touches bbox {list(box)} "
            f"between {span[0]} and {span[1]} with eo:cloud_cover <= {max_cloud} "
            f"({len(items)} item(s) looked at). Fix: widen imagery.dates or raise "
            "imagery.max_cloud (or check imagery.root and imagery.collection)."
        )
    for acq in acquisitions:
        logger.info(
            "area %s: %s, cloud cover %.1f%%, item(s) %s",
            area,
            acq.date,
            acq.cloud_cover,
            ", ".join(acq.ids),
        )
    with rasterio.Env(**gdal_options(settings)):
        masks = [
            [_clear_mask(area, item, grid, settings) for item in acq.items] for acq in acquisitions
        ]
        if not any(mask.any() for group in masks for mask in group):
            raise DataError(
                f"Area '{area}': no clear pixel in {sum(len(a.items) for a in acquisitions)} "
                f"item(s) over bbox {list(box)} (all cloud, shadow, snow or nodata). Fix: "
                "widen imagery.dates, raise imagery.max_items, or check the bbox."
            )
        tags = {
            "source": source,
            "items": json.dumps([i for acq in acquisitions for i in acq.ids]),
            "dates": json.dumps([acq.date.isoformat() for acq in acquisitions]),
            "licence": SENTINEL2_LICENCE,
            "area": area,
            "bbox": json.dumps(list(box)),
        }
        layers = (
            _composite_band(area, band, acquisitions, masks, grid, settings) for band in bands
        )
        _write_imagery(area, grid, bands, layers, tags, out)
    return Path(out)


def _write_imagery(
    area: str,
    grid: Grid,
    bands: Sequence[str],
    layers: Any,
    tags: dict[str, str],
    out: str | Path,
) -> None:
    """Write encoded bands one at a time (``layers`` yields reflectance per band)."""
    profile = _profile(
        grid.crs,
        grid.transform,
        grid.shape,
        count=len(bands),
        dtype="uint16",
        nodata=NODATA,
        predictor=2,
        interleave="band",
    )
    with atomic_path(out) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        for index, (band, refl) in enumerate(zip(bands, layers, strict=True), start=1):
            dn = encode_reflectance(refl)
            if not dn.any():
                raise DataError(
                    f"Area '{area}': band {band} of the composite is entirely nodata. Fix: "
                    "widen imagery.dates or raise imagery.max_cloud / imagery.max_items."
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


def _asset_href(area: str, item: pystac.Item, band: str) -> tuple[str, pystac.Asset]:
    """Return the GDAL path and asset of a band of an item.

    Raises:
        DataError: when the item has no such asset.

    """
    key = ASSET_KEYS[band]
    asset = item.assets.get(key)
    href = asset.get_absolute_href() if asset is not None else None
    if asset is None or href is None:
        raise DataError(
            f"Area '{area}': STAC item '{item.id}' has no asset '{key}' (band {band}); its "
            f"assets are {sorted(item.assets)}. Fix: use a Sentinel-2 L2A collection with "
            "Earth Search asset keys, or drop the band from imagery.bands."
        )
    return gdal_path(href), asset


def _asset_scale(asset: pystac.Asset) -> float:
    """Return the DN scale of an asset's first ``raster:bands`` entry (0.0001 when not given)."""
    bands = asset.extra_fields.get("raster:bands") or [{}]
    return float(bands[0].get("scale", 1e-4))


def _clear_mask(area: str, item: pystac.Item, grid: Grid, settings: HttpSettings) -> np.ndarray:
    """Read an item's SCL band onto the area grid and return its clear-pixel mask."""
    path, _ = _asset_href(area, item, "SCL")
    what = f"SCL of item '{item.id}' (area '{area}')"
    # classes are never interpolated
    scl = read_onto_grid(path, grid, what, resampling=Resampling.nearest, settings=settings)
    mask = clear_mask(scl)
    logger.info("area %s: item %s, %.1f%% clear", area, item.id, 100 * mask.mean())
    return mask


def _composite_band(
    area: str,
    band: str,
    acquisitions: Sequence[Acquisition],
    masks: Sequence[Sequence[np.ndarray]],
    grid: Grid,
    settings: HttpSettings,
) -> np.ndarray:
    """Compute one band's median reflectance over the acquisitions (NaN: no clear value)."""
    layers = []
    for acq, acq_masks in zip(acquisitions, masks, strict=True):
        parts = []
        for item, clear in zip(acq.items, acq_masks, strict=True):
            path, asset = _asset_href(area, item, band)
            what = f"band {band} of item '{item.id}' (area '{area}')"
            dn = read_onto_grid(path, grid, what, settings=settings)
            parts.append(
                to_reflectance(dn, _asset_scale(asset), boa_offset(item.properties), clear)
            )
        layers.append(mosaic_first(parts))
    return median_composite(np.stack(layers))


def _catalog_items(area: str, root: str | Path, collection: str) -> list[pystac.Item]:
    """List the items of a collection in the static catalog ``{root}/stac/catalog.json``.

    Raises:
        SourceError: when the catalog or the collection is missing.
        DataError: when the catalog cannot be parsed.

    """
    path = join_path(root, "stac", "catalog.json")
    if not is_remote(path) and not Path(path).exists():
        raise SourceError(
            f"Area '{area}': no STAC catalog at '{path}'. Fix: build the demo bucket "
            "(snakemake make_demo_bucket) or set imagery.root to the folder holding "
            "stac/catalog.json."
        )
    try:
        catalog = pystac.Catalog.from_file(path)
        child = catalog.get_child(collection)
        children = [] if child is not None else [c.id for c in catalog.get_children()]
        items = [] if child is None else list(child.get_items(recursive=True))
    except (pystac.STACError, ValueError, KeyError, OSError) as err:
        raise DataError(
            f"Area '{area}': cannot read the STAC catalog '{path}': {err}. Fix: rebuild the "
            "demo bucket (snakemake make_demo_bucket)."
        ) from err
    if child is None:
        raise SourceError(
            f"Area '{area}': the STAC catalog '{path}' has no collection '{collection}' "
            f"(it has {children}). Fix: set imagery.collection to one of them."
        )
    logger.info("area %s: %d item(s) in %s collection %s", area, len(items), path, collection)
    return items


def _search_items(
    area: str,
    bbox: BBox,
    url: str,
    collection: str,
    span: tuple[Any, Any],
    max_cloud: float,
    settings: HttpSettings,
) -> list[pystac.Item]:
    """Search a STAC API for the items of a collection over a bbox and dates.

    The client retries connection errors and HTTP 429/5xx (:func:`http_retry`) and
    times out per :class:`HttpSettings`.

    Raises:
        SourceError: when the API cannot be reached or answers with an error.

    """
    datetime = f"{span[0].isoformat()}/{span[1].isoformat()}"
    try:
        stac_io = StacApiIO(
            max_retries=http_retry(settings),
            timeout=(settings.connect_timeout, settings.timeout),
        )
        client = pystac_client.Client.open(url, stac_io=stac_io)
        search = client.search(
            collections=[collection],
            bbox=list(bbox),
            datetime=datetime,
            query={"eo:cloud_cover": {"lte": max_cloud}},
            limit=SEARCH_PAGE_SIZE,
            max_items=MAX_SEARCH_ITEMS,
        )
        items = list(search.items())
    except (APIError, requests.RequestException, pystac.STACError, OSError) as err:
        raise SourceError(
            f"Area '{area}': the STAC API search at {url} (collection {collection}, bbox "
            f"{list(bbox)}, datetime {datetime}) failed: {err} {_network_fix(settings)} Also "
            "check imagery.collection."
        ) from err
    logger.info("area %s: %d item(s) found at %s", area, len(items), url)
    return items


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
        _write_imagery(area, grid, bands, layers(), tags, out)
    return Path(out)
