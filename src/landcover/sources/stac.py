"""Sentinel-2 L2A from STAC: a static catalog or a STAC API search, composited per band.

Items that touch the bbox, lie within the dates and have ``eo:cloud_cover <= max_cloud``
are grouped by acquisition (platform and day) and the ``max_items`` clearest are kept.
Each band is read onto the area grid, masked with the SCL band and nodata, converted to
reflectance and reduced with a per-pixel median (the array steps live in
:mod:`landcover.sources.composite`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pystac_client
import rasterio
import requests
from pystac_client.exceptions import APIError
from pystac_client.stac_api_io import StacApiIO
from rasterio.enums import Resampling

from landcover.errors import ConfigError, DataError, SourceError
from landcover.grid import BBox, Grid, area_grid
from landcover.sources.composite import (
    Acquisition,
    boa_offset,
    clear_mask,
    date_range,
    median_composite,
    mosaic_first,
    select_acquisitions,
    to_reflectance,
)
from landcover.sources.http import (
    HttpSettings,
    gdal_options,
    gdal_path,
    http_retry,
    is_remote,
    join_path,
    network_fix,
)
from landcover.sources.sentinel2 import ASSET_KEYS
from landcover.sources.windows import read_onto_grid, write_imagery

logger = logging.getLogger(__name__)


EARTH_SEARCH_URL = "https://earth-search.aws.element84.com/v1"
"""Element 84's Earth Search STAC API (Sentinel-2 L2A COGs on AWS; no credentials needed)."""


DEFAULT_ROOT = EARTH_SEARCH_URL
"""Used when ``imagery.root`` is null."""

SENTINEL2_LICENCE = (
    "Copernicus Sentinel data, see "
    "https://sentinels.copernicus.eu/documents/247904/690755/Sentinel_Data_Legal_Notice"
)


MAX_SEARCH_ITEMS = 1000
"""Upper bound on the items a STAC API search pages through."""


SEARCH_PAGE_SIZE = 100
"""Items per page of a STAC API search (pystac-client follows the API's next links)."""


def acquire_imagery(
    area: str,
    bbox: BBox,
    *,
    root: str | None,
    collection: str,
    dates: Sequence[str],
    max_cloud: float,
    max_items: int,
    bands: Sequence[str],
    resolution: float,
    out: str | Path,
) -> Path:
    """Write an area's cloud-masked median Sentinel-2 L2A composite on its grid.

    Items come from a STAC API search (``root`` = the API URL, default Earth Search; the
    API filters bbox, dates and cloud cover; :func:`composite_catalog` reads a static
    catalog instead). Those that touch the
    bbox, lie within ``dates`` and have ``eo:cloud_cover <= max_cloud`` are grouped by
    acquisition (platform and day) and the ``max_items`` clearest acquisitions are kept.
    Each band is read onto ``area_grid(bbox, resolution)``, masked with the SCL band
    (``landcover.sources.sentinel2.SCL_MASK``) and nodata, converted to reflectance (asset scale,
    :func:`~landcover.sources.composite.boa_offset`) and reduced with a per-pixel median. The
    output is uint16 DN = round(reflectance * 10000) + 1000 with band scale 0.0001 and
    offset -0.1, nodata 0 where no clear observation.


    Remote files are read through ``/vsicurl/`` with :func:`gdal_options`; transient
    HTTP failures are retried (:class:`HttpSettings`) and the output is written
    atomically, so a failure leaves no file.

    Args:
        area: area id (for messages and tags).
        bbox: (west, south, east, north) in degrees.
        root: the STAC API URL (None: Earth Search).
        collection: STAC collection id.
        dates: inclusive ``[start, end]`` as ``"YYYY-MM-DD"``.
        max_cloud: highest accepted ``eo:cloud_cover`` (percent).
        max_items: number of acquisitions in the median.
        bands: band names in output order (``B02`` ...).
        resolution: output pixel size in metres.
        out: output GeoTIFF.

    Returns:
        The output path.

    Raises:
        SourceError: when the catalog / API / an asset stays unreachable (the URL is
            named) or no item matches.
        DataError: when an asset cannot be decoded or the composite is all nodata.
        ConfigError: on an unknown band.

    """
    url = str(root or EARTH_SEARCH_URL)
    check_bands(bands)
    span = date_range(dates)
    settings = HttpSettings.from_env()
    items = _search_items(area, bbox, url, collection, span, max_cloud, settings)
    select = Selection(collection, span, max_cloud, max_items)
    return composite(area, bbox, items, f"STAC API {url}", select, bands, resolution, out, settings)


def composite_catalog(
    area: str,
    bbox: BBox,
    *,
    root: str | Path,
    collection: str,
    dates: Sequence[str],
    max_cloud: float,
    max_items: int,
    bands: Sequence[str],
    resolution: float,
    out: str | Path,
) -> Path:
    """As :func:`acquire_imagery`, with the items of a static catalog.

    The catalog is ``{root}/stac/catalog.json`` (the demo bucket's layout).
    """
    check_bands(bands)
    span = date_range(dates)
    items = _catalog_items(area, root, collection)
    source = f"static STAC catalog {join_path(root, 'stac', 'catalog.json')}"
    select = Selection(collection, span, max_cloud, max_items)
    settings = HttpSettings.from_env()
    return composite(area, bbox, items, source, select, bands, resolution, out, settings)


def check_bands(bands: Sequence[str]) -> None:
    """Every band must be a Sentinel-2 L2A asset (SCL is the mask, not a band).

    Raises:
        ConfigError: naming the unknown bands and the choices.

    """
    unknown = [b for b in bands if b not in ASSET_KEYS or b == "SCL"]
    if unknown:
        allowed = [b for b in ASSET_KEYS if b != "SCL"]
        raise ConfigError(f"imagery.bands: unknown band(s) {unknown}; choose from {allowed}.")


@dataclass(frozen=True)
class Selection:
    """Which items a composite keeps: collection, date span, cloud cover and how many."""

    collection: str
    span: tuple[dt.date, dt.date]
    max_cloud: float
    max_items: int


def composite(
    area: str,
    box: BBox,
    items: Sequence[pystac.Item],
    source: str,
    select: Selection,
    bands: Sequence[str],
    resolution: float,
    out: str | Path,
    settings: HttpSettings,
) -> Path:
    """Select the clearest acquisitions of ``items`` and write their median composite."""
    span, max_cloud, collection = select.span, select.max_cloud, select.collection
    source += f", collection {collection}"
    grid = area_grid(box, resolution)
    acquisitions = select_acquisitions(items, box, span, max_cloud, select.max_items)
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
        write_imagery(area, grid, bands, layers, tags, out)
    return Path(out)


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
            f"{list(bbox)}, datetime {datetime}) failed: {err} {network_fix(settings)} Also "
            "check imagery.collection."
        ) from err
    logger.info("area %s: %d item(s) found at %s", area, len(items), url)
    return items
