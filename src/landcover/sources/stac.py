"""Sentinel-2 L2A from STAC: a static catalog or a STAC API search, composited per band.

Items that touch the bbox, lie within the dates and have ``eo:cloud_cover <= max_cloud``
are grouped by acquisition (platform and day) and the ``max_items`` clearest are kept.
Each band is read onto the area grid, masked with the SCL band and nodata, converted to
reflectance and reduced with a per-pixel median (the array steps live in
:mod:`landcover.sources.composite`). Beside the composite go the items used
(``items.json``: a pinned scene list that ``imagery.items`` reads back without a search)
and the clear-look count per pixel (``clear_count.tif``).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
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
from landcover.io import atomic_path
from landcover.sources.composite import (
    Acquisition,
    OffsetCheck,
    boa_offset,
    check_offset,
    clear_count,
    clear_fraction,
    clear_mask,
    date_range,
    group_acquisitions,
    item_date,
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
from landcover.sources.windows import read_onto_grid, write_clear_count, write_imagery

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


ITEMS_FILE = "items.json"
"""The items a composite used, written beside it (``imagery.items`` reads it back)."""

CLEAR_COUNT_FILE = "clear_count.tif"
"""The clear-look count per pixel, written beside the composite."""

PROBE_BAND = "B02"
"""The band whose DN decide the offset when the metadata says it is in them (the darkest)."""


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
    items: str | None,
    min_clear: float,
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

    Beside ``out`` go ``items.json`` (the items used, with the offset decided for each:
    :func:`items_record`) and ``clear_count.tif`` (clear looks per pixel). With ``items``
    (a pinned scene list) exactly those items are read and the API is not queried
    (:func:`read_pins`). Less than ``min_clear`` of the area with a clear look fails.

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
        items: ``imagery.items``, a pinned scene list (an ``items.json``, a folder of them,
            ``{area}`` replaced by the area id), or None to search.
        min_clear: the smallest fraction of the area with at least one clear look.

    Returns:
        The output path.

    Raises:
        SourceError: when the catalog / API / an asset stays unreachable (the URL is
            named) or no item matches.
        DataError: when an asset cannot be decoded, the composite is all nodata or less
            than ``min_clear`` of the area has a clear look.
        ConfigError: on an unknown band or a missing / foreign pinned scene list.

    """
    url = str(root or EARTH_SEARCH_URL)
    check_bands(bands)
    span = date_range(dates)
    settings = HttpSettings.from_env()
    select = Selection(collection, span, max_cloud, max_items, min_clear)
    if items:
        return composite_pinned(area, bbox, items, select, bands, resolution, out, settings)
    found = _search_items(area, bbox, url, collection, span, max_cloud, settings)
    return composite(area, bbox, found, f"STAC API {url}", select, bands, resolution, out, settings)


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
    items: str | None,
    min_clear: float,
) -> Path:
    """As :func:`acquire_imagery`, with the items of a static catalog.

    The catalog is ``{root}/stac/catalog.json`` (the demo bucket's layout).
    """
    check_bands(bands)
    span = date_range(dates)
    select = Selection(collection, span, max_cloud, max_items, min_clear)
    settings = HttpSettings.from_env()
    if items:
        return composite_pinned(area, bbox, items, select, bands, resolution, out, settings)
    found = _catalog_items(area, root, collection)
    source = f"static STAC catalog {join_path(root, 'stac', 'catalog.json')}"
    return composite(area, bbox, found, source, select, bands, resolution, out, settings)


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
    """Which items a composite keeps, and how much of the area needs a clear look.

    The collection, the date span, the highest cloud cover, how many acquisitions, and
    ``min_clear`` (the smallest fraction of the area with at least one clear look).
    """

    collection: str
    span: tuple[dt.date, dt.date]
    max_cloud: float
    max_items: int
    min_clear: float


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
    pinned: Mapping[str, OffsetCheck] | None = None,
) -> Path:
    """Select the clearest acquisitions of ``items`` and write their median composite.

    With ``pinned`` (item id -> recorded offset, from :func:`read_pins`) every item is used as
    given, with its recorded offset; else they are selected (:func:`select_acquisitions`)
    and each item's offset is decided (:func:`_offset`). Writes ``out``, then
    ``clear_count.tif`` and ``items.json`` beside it.
    """
    span, max_cloud, collection = select.span, select.max_cloud, select.collection
    where = f"{source}, collection {collection}"
    grid = area_grid(box, resolution)
    if pinned is None:
        acquisitions = select_acquisitions(items, box, span, max_cloud, select.max_items)
    else:
        acquisitions = group_acquisitions(items)
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
        count = clear_count(masks)
        check_clear(area, box, count, acquisitions, select)
        checks = {
            item.id: _offset(area, item, mask, grid, settings, pinned)
            for acq, group in zip(acquisitions, masks, strict=True)
            for item, mask in zip(acq.items, group, strict=True)
        }
        tags = {
            "source": where,
            "items": json.dumps([i for acq in acquisitions for i in acq.ids]),
            "dates": json.dumps([acq.date.isoformat() for acq in acquisitions]),
            "licence": SENTINEL2_LICENCE,
            "area": area,
            "bbox": json.dumps(list(box)),
        }
        offsets = {item_id: check.offset for item_id, check in checks.items()}
        layers = (
            _composite_band(area, band, acquisitions, masks, offsets, grid, settings)
            for band in bands
        )
        write_imagery(area, grid, bands, layers, tags, out)
    write_clear_count(area, grid, count, tags, Path(out).with_name(CLEAR_COUNT_FILE))
    record = items_record(area, box, source, select, bands, acquisitions, checks)
    write_items(area, record, Path(out).with_name(ITEMS_FILE))
    return Path(out)


def check_clear(
    area: str,
    box: BBox,
    count: np.ndarray,
    acquisitions: Sequence[Acquisition],
    select: Selection,
) -> None:
    """Fail when too little of the area has a clear look (``imagery.min_clear``).

    Raises:
        DataError: naming the area, the dates and the fix.

    """
    fraction = clear_fraction(count)
    n_items = sum(len(a.items) for a in acquisitions)
    dates = [a.date.isoformat() for a in acquisitions]
    logger.info("area %s: %.1f%% of the area has a clear look", area, 100 * fraction)
    if fraction == 0:
        raise DataError(
            f"Area '{area}': no clear pixel in {n_items} item(s) over bbox {list(box)} (all "
            "cloud, shadow, snow or nodata). Fix: widen imagery.dates, raise "
            "imagery.max_items, or check the bbox."
        )
    if fraction < select.min_clear:
        raise DataError(
            f"Area '{area}': only {100 * fraction:.1f}% of bbox {list(box)} has a clear look "
            f"in {len(acquisitions)} acquisition(s) {dates} (imagery.dates "
            f"{select.span[0]} to {select.span[1]}); imagery.min_clear is "
            f"{select.min_clear:g}. Fix: widen imagery.dates, raise imagery.max_items "
            f"(now {select.max_items}) or imagery.max_cloud (now {select.max_cloud:g}), or "
            "lower imagery.min_clear."
        )


def items_record(
    area: str,
    box: BBox,
    source: str,
    select: Selection,
    bands: Sequence[str],
    acquisitions: Sequence[Acquisition],
    checks: Mapping[str, OffsetCheck],
) -> dict[str, Any]:
    """The pinned scene list of a composite: its items, their hrefs and offsets.

    Each item has its id, datetime, platform, cloud cover, processing baseline, Earth
    Search's offset flag, the offset from the metadata and the one decided (with the
    share of dark DN that decided it), the hrefs of its bands, and the whole STAC item
    that :func:`read_pins` reads back. Asset hrefs are absolute URLs or paths, but for
    files inside the working directory (a local catalog such as the demo bucket): those
    are relative to it (:func:`portable_href`), so that a copy of the project with its
    pinned lists reads its own files.
    """
    used = [*bands, "SCL"]
    entries = []
    for acq in acquisitions:
        for item in acq.items:
            data = item.to_dict(include_self_link=False, transform_hrefs=False)
            for key, asset in item.assets.items():
                data["assets"][key]["href"] = portable_href(asset.get_absolute_href() or asset.href)
            data["links"] = []
            check = checks[item.id]
            props = item.properties
            entries.append(
                {
                    "id": item.id,
                    "datetime": props.get("datetime") or props.get("start_datetime"),
                    "platform": props.get("platform"),
                    "cloud_cover": props.get("eo:cloud_cover"),
                    "processing_baseline": props.get("s2:processing_baseline"),
                    "boa_offset_applied": props.get("earthsearch:boa_offset_applied"),
                    "offset_metadata": check.metadata,
                    "offset": check.offset,
                    "dark_share": check.dark_share,
                    "hrefs": {
                        band: data["assets"][ASSET_KEYS[band]]["href"]
                        for band in used
                        if ASSET_KEYS[band] in data["assets"]
                    },
                    "item": data,
                }
            )
    return {
        "area": area,
        "bbox": list(box),
        "source": source,
        "collection": select.collection,
        "dates": [select.span[0].isoformat(), select.span[1].isoformat()],
        "max_cloud": select.max_cloud,
        "max_items": select.max_items,
        "items": entries,
    }


def portable_href(href: str) -> str:
    """Return ``href`` relative to the working directory when it is a local file inside it.

    URLs and files elsewhere are returned as they are. The workflow's jobs run in its
    working directory, where :func:`local_hrefs_absolute` resolves such paths again.
    """
    if "://" in href:
        return href
    try:
        return Path(href).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return href


def local_hrefs_absolute(item: pystac.Item) -> pystac.Item:
    """Resolve an item's relative local asset hrefs against the working directory, in place.

    The inverse of :func:`portable_href`; URLs and absolute paths are left alone.
    """
    for asset in item.assets.values():
        if "://" not in asset.href and not Path(asset.href).is_absolute():
            asset.href = str(Path(asset.href).resolve())
    return item


def write_items(area: str, record: Mapping[str, Any], out: Path) -> Path:
    """Write a pinned scene list (:func:`items_record`) as JSON, atomically."""
    with atomic_path(out) as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n")
    logger.info("area %s: wrote the %d item(s) used to %s", area, len(record["items"]), out)
    return out


def pins_path(area: str, spec: str | Path) -> Path:
    """The pinned scene list of an area: ``imagery.items`` with ``{area}`` replaced.

    A folder holds ``{area}/items.json`` (a copy of ``resources/raw``) or ``{area}.json``.

    Raises:
        ConfigError: when no such file exists (naming the paths tried and the fix).

    """
    path = Path(str(spec).replace("{area}", area))
    tried = [path / area / ITEMS_FILE, path / f"{area}.json"] if path.is_dir() else [path]
    for candidate in tried:
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"Area '{area}': imagery.items '{spec}' gives no pinned scene list (tried "
        f"{[str(p) for p in tried]}). Fix: copy the items.json files an earlier run wrote "
        "to resources/raw/{area}/ out of resources/raw (snakemake deletes a job's outputs "
        "before it runs), e.g. `cp -r resources/raw pins` and `imagery.items: pins`, or set "
        "imagery.items: null to search again."
    )


def check_imagery(source: Mapping[str, Any]) -> None:
    """The bands must be Sentinel-2 L2A bands (the items' asset keys).

    Raises:
        ConfigError: naming the unknown bands and the known ones.

    """
    known = [band for band in ASSET_KEYS if band != "SCL"]
    unknown = [band for band in source["bands"] if band not in known]
    if unknown:
        raise ConfigError(
            f"imagery.bands: {unknown} are not Sentinel-2 L2A bands, which imagery.kind "
            f"'{source['kind']}' reads ({', '.join(known)}). Fix the names, or read your "
            "own file with imagery.kind: local."
        )


def inputs_imagery(source: Mapping[str, Any], area: str | None = None) -> list[str]:
    """The area's pinned scene list (``imagery.items``), an input of ``acquire_imagery``.

    Editing or replacing it reruns the area. None without ``items``, when the list is
    missing (the acquisition then says what it tried), or when it is the acquisition's
    own output (``resources/raw/{area}/items.json``, which would be a cycle).
    """
    spec = source.get("items")
    if not spec or area is None:
        return []
    try:
        path = pins_path(area, spec)
    except ConfigError:
        return []
    if path.resolve() == Path("resources", "raw", area, ITEMS_FILE).resolve():
        return []
    return [str(path)]


@dataclass(frozen=True)
class Pins:
    """A pinned scene list read back: the items, their recorded offsets, where they came from."""

    items: list[pystac.Item]
    checks: dict[str, OffsetCheck]
    source: str
    collection: str


def read_pins(area: str, spec: str | Path) -> Pins:
    """Read an area's pinned scene list (``imagery.items``, see :func:`pins_path`).

    Raises:
        ConfigError: when the file is missing, unreadable or written for another area.

    """
    path = pins_path(area, spec)
    try:
        record = json.loads(path.read_text())
        entries = record["items"]
        items = [local_hrefs_absolute(pystac.Item.from_dict(entry["item"])) for entry in entries]
        offsets = {
            entry["id"]: OffsetCheck(
                float(entry["offset_metadata"]), float(entry["offset"]), entry.get("dark_share")
            )
            for entry in entries
        }
        pins = Pins(items, offsets, str(record["source"]), str(record["collection"]))
    except (OSError, ValueError, KeyError, TypeError, pystac.STACError) as err:
        raise ConfigError(
            f"Area '{area}': cannot read the pinned scene list '{path}' (imagery.items): "
            f"{err!r}. Fix: give an items.json written by acquire_imagery, or set "
            "imagery.items: null to search again."
        ) from err
    if record.get("area") != area:
        raise ConfigError(
            f"Area '{area}': the pinned scene list '{path}' (imagery.items) was written for "
            f"area '{record.get('area')}'. Fix: point imagery.items at this area's file (a "
            "folder of {area}/items.json, or a path with {area})."
        )
    logger.info(
        "area %s: %d pinned item(s) from %s (no STAC search): %s",
        area,
        len(items),
        path,
        ", ".join(offsets),
    )
    return pins


def composite_pinned(
    area: str,
    box: BBox,
    spec: str | Path,
    select: Selection,
    bands: Sequence[str],
    resolution: float,
    out: str | Path,
    settings: HttpSettings,
) -> Path:
    """Composite exactly the items of a pinned scene list, with their recorded offsets."""
    pins = read_pins(area, spec)
    start, end = select.span
    outside = [i.id for i in pins.items if not start <= item_date(i) <= end]
    if outside:
        logger.warning(
            "area %s: pinned item(s) %s lie outside imagery.dates %s to %s; the pins are "
            "used as they are",
            area,
            outside,
            start,
            end,
        )
    select = replace(select, collection=pins.collection)
    return composite(
        area, box, pins.items, pins.source, select, bands, resolution, out, settings, pins.checks
    )


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


def _offset(
    area: str,
    item: pystac.Item,
    clear: np.ndarray,
    grid: Grid,
    settings: HttpSettings,
    pinned: Mapping[str, OffsetCheck] | None,
) -> OffsetCheck:
    """Decide an item's offset: the pinned one, else the metadata's checked against its DN.

    When the metadata says the +1000 is in the DN, the item's blue band
    (:data:`PROBE_BAND`) is read over its clear pixels and :func:`check_offset` decides; a
    decision against the metadata is logged as a warning naming the item.
    """
    if pinned is not None:
        return pinned[item.id]
    metadata = boa_offset(item.properties)
    if metadata == 0.0 or ASSET_KEYS[PROBE_BAND] not in item.assets:
        return OffsetCheck(metadata, metadata)
    path, _ = _asset_href(area, item, PROBE_BAND)
    what = f"band {PROBE_BAND} of item '{item.id}' (area '{area}')"
    check = check_offset(read_onto_grid(path, grid, what, settings=settings), clear, metadata)
    if check.overridden:
        logger.warning(
            "area %s: item %s says earthsearch:boa_offset_applied=%s (processing baseline "
            "%s, offset %g), but %.0f%% of its clear %s DN are below 1000: the offset was "
            "already removed, so it is read with offset %g",
            area,
            item.id,
            item.properties.get("earthsearch:boa_offset_applied"),
            item.properties.get("s2:processing_baseline"),
            metadata,
            100 * (check.dark_share or 0.0),
            PROBE_BAND,
            check.offset,
        )
    return check


def _composite_band(
    area: str,
    band: str,
    acquisitions: Sequence[Acquisition],
    masks: Sequence[Sequence[np.ndarray]],
    offsets: Mapping[str, float],
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
            parts.append(to_reflectance(dn, _asset_scale(asset), offsets[item.id], clear))
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
