"""Acquisition: an area's labels (ESA WorldCover) and Sentinel-2 L2A composite, read windowed.

Only the pixels over the area's bbox are read: WorldCover tiles through
``rasterio.merge.merge`` with ``bounds`` (windowed reads, mosaicked across tile
borders), Sentinel-2 band COGs through a ``WarpedVRT`` onto the area grid. Remote
files (``http(s)://``) are read through GDAL's ``/vsicurl/``, which fetches only the
COG tiles a window needs. The array steps (masks, median, encoding) live in
``landcover.composite``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pystac
import pystac_client
import rasterio
import requests
from affine import Affine
from pystac_client.exceptions import APIError
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.merge import merge
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window, from_bounds
from rasterio.windows import bounds as window_bounds

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
from landcover.io import atomic_path, open_raster
from landcover.sentinel2 import ASSET_KEYS

logger = logging.getLogger(__name__)

WORLDCOVER_URL = "https://esa-worldcover.s3.eu-central-1.amazonaws.com"
"""The public bucket of ESA WorldCover (no credentials needed)."""

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

GDAL_ENV = {
    # a remote COG is opened without listing its "directory" (one request saved per file)
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    # transient HTTP errors (429, 5xx) of public buckets are retried instead of failing the rule
    "GDAL_HTTP_MAX_RETRY": "4",
    "GDAL_HTTP_RETRY_DELAY": "2",
    # neighbouring COG tiles of a window come in one request
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "VSI_CACHE": "TRUE",
}
"""GDAL options for the windowed reads (harmless for local files)."""

_MISSING = ("does not exist in the file system", "HTTP response code: 404", "No such file")


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


def _open_if_exists(path: str, what: str) -> rasterio.DatasetReader | None:
    """Open a raster, or return None when it does not exist (local or HTTP 404).

    Raises:
        DataError: when the file exists but cannot be read.

    """
    if not is_remote(path) and not Path(path).exists():
        return None
    try:
        return open_raster(gdal_path(path), what)
    except DataError as err:
        if is_remote(path) and any(text in str(err.__cause__) for text in _MISSING):
            return None
        raise


# --------------------------------------------------------------------------- windows


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


def read_window_mosaic(
    sources: Sequence[rasterio.DatasetReader], bbox: BBox, margin: int = LABEL_MARGIN
) -> tuple[np.ndarray, Affine]:
    """Read band 1 of the sources over a lon/lat bbox into one array on their pixel grid.

    The output grid is the first source's pixel grid (all sources share it, as
    WorldCover tiles do), cut to the bbox plus ``margin`` pixels. Only those
    windows are read. Where sources overlap the first valid pixel wins; pixels no
    source covers are the first source's nodata (0 when it has none).

    Args:
        sources: open datasets in one CRS and pixel grid.
        bbox: (west, south, east, north) in degrees.
        margin: extra pixels on every side.

    Returns:
        (array (rows, cols), affine transform).

    """
    first = sources[0]
    bounds = transform_bounds("EPSG:4326", first.crs, *bbox, densify_pts=21)
    window = snap_window(bounds, first.transform, margin)
    nodata = first.nodata if first.nodata is not None else 0
    data, transform = merge(
        list(sources),
        bounds=window_bounds(window, first.transform),
        res=(abs(first.transform.a), abs(first.transform.e)),
        nodata=nodata,
        dtype=first.dtypes[0],
        indexes=[1],
        resampling=Resampling.nearest,
    )
    return data[0], transform


def read_onto_grid(
    path: str,
    grid: Grid,
    what: str,
    band: int = 1,
    resampling: Resampling = Resampling.nearest,
) -> np.ndarray:
    """Read one band of a raster onto a target grid, fetching only what the grid needs.

    A ``WarpedVRT`` reprojects on the fly; on a grid aligned to the source's (the
    area grid is snapped to 60 m like Sentinel-2 tiles) nearest resampling copies
    10 m pixels exactly and repeats each 20 m pixel 2 x 2. Pixels outside the source
    are 0.

    Args:
        path: GDAL path of the raster.
        grid: the target grid.
        what: what the file is, for error messages.
        band: 1-based band index.
        resampling: resampling method.

    Raises:
        DataError: when the file cannot be opened or decoded.

    """
    with open_raster(path, what) as src:
        if band > src.count:
            raise DataError(
                f"{what} '{path}' has {src.count} band(s); band {band} was asked for. "
                "Check the band list or the file."
            )
        try:
            with WarpedVRT(
                src,
                crs=grid.crs,
                transform=grid.transform,
                width=grid.width,
                height=grid.height,
                resampling=resampling,
                nodata=NODATA,
            ) as vrt:
                return vrt.read(band)
        except RasterioError as err:
            raise DataError(
                f"Cannot read {what} '{path}': {err}. The file is corrupt or was cut off; "
                "fix or re-download it (or drop its item by narrowing the dates)."
            ) from err


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
            is one GeoTIFF of integer codes in any CRS.
        root: where the source is (see ``kind``).
        version: WorldCover release, ``"v100"`` (2020) or ``"v200"`` (2021).
        out: output GeoTIFF.
        margin: pixels read beyond the bbox on each side.

    Returns:
        The output path.

    Raises:
        SourceError: when no tile exists over the bbox.
        DataError: when a file is corrupt.
        ConfigError: on an unknown kind or version.

    """
    box = check_bbox(tuple(bbox), area)  # type: ignore[arg-type]
    with rasterio.Env(**GDAL_ENV), ExitStack() as stack:
        match kind:
            case "demo" | "worldcover":
                if kind == "demo" and not root:
                    raise ConfigError(
                        f"Area '{area}': labels.kind 'demo' needs the demo bucket folder as root "
                        "(demo.root)."
                    )
                base = root or WORLDCOVER_URL
                sources, urls = _open_worldcover_tiles(area, box, base, version, kind, stack)
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
                src = _open_if_exists(str(root), f"label raster of area '{area}'")
                if src is None:
                    raise SourceError(
                        f"Area '{area}': the label raster '{root}' does not exist; set "
                        "labels.root to an existing GeoTIFF of label codes."
                    )
                sources, urls = [stack.enter_context(src)], [str(root)]
                tags = {"source": json.dumps(urls)}
            case _:
                raise ConfigError(
                    f"labels.kind '{kind}' is unknown; use 'demo', 'worldcover' or 'local'."
                )
        logger.info("area %s: reading labels from %s", area, ", ".join(urls))
        try:
            codes, transform = read_window_mosaic(sources, box, margin)
        except RasterioError as err:
            raise DataError(
                f"Area '{area}': cannot read label file(s) {urls}: {err}. A file is corrupt "
                "or cut off; re-download it (or rebuild the demo bucket)."
            ) from err
        colormap = _first_colormap(sources)
        crs, nodata = sources[0].crs, sources[0].nodata
    nodata = 0 if nodata is None else nodata
    if not (codes != nodata).any():
        logger.warning("area %s: the labels are all nodata over bbox %s", area, list(box))
    tags |= {"area": area, "bbox": json.dumps(list(box)), "kind": kind}
    profile = _profile(crs, transform, codes.shape, count=1, dtype=codes.dtype, nodata=nodata)
    with atomic_path(out) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        if colormap:  # before the pixels: GDAL cannot set a palette once blocks are written
            dst.write_colormap(1, colormap)
        dst.write(codes, 1)
        dst.update_tags(**tags)
    logger.info("area %s: wrote labels %s (%d x %d px)", area, out, *codes.shape[::-1])
    return Path(out)


def _open_worldcover_tiles(
    area: str, bbox: BBox, root: str | Path, version: str, kind: str, stack: ExitStack
) -> tuple[list[rasterio.DatasetReader], list[str]]:
    """Open the WorldCover tiles that cover a bbox, skipping those that do not exist.

    Raises:
        SourceError: when none exists.

    """
    paths = [(tile, worldcover_path(root, version, tile)) for tile, _ in worldcover_tiles(bbox)]
    sources, urls = [], []
    for tile, path in paths:
        src = _open_if_exists(path, f"WorldCover tile {tile} (area '{area}')")
        if src is None:
            logger.warning(
                "area %s: WorldCover tile %s not found at %s (no tile over open ocean); skipped",
                area,
                tile,
                path,
            )
            continue
        sources.append(stack.enter_context(src))
        urls.append(path)
    if not sources:
        fix = (
            "rebuild the demo bucket (snakemake make_demo_bucket) or set labels.root to it"
            if kind == "demo"
            else "check labels.root and labels.version and the network connection; WorldCover "
            "has no tiles over open ocean, so move the area's bbox onto land"
        )
        raise SourceError(
            f"Area '{area}': no WorldCover {version} tile found over bbox {list(bbox)}; "
            f"looked for {[p for _, p in paths]}. Fix: {fix}."
        )
    return sources, urls


def _first_colormap(
    sources: Sequence[rasterio.DatasetReader],
) -> dict[int, tuple[int, ...]] | None:
    """Return the colour table of band 1 of the first source that has one."""
    for src in sources:
        try:
            return src.colormap(1)
        except ValueError:  # no colour table
            continue
    return None


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
    or a STAC API search (``kind="stac"``, ``root`` = the API URL). Those that touch the
    bbox, lie within ``dates`` and have ``eo:cloud_cover <= max_cloud`` are grouped by
    acquisition (platform and day) and the ``max_items`` clearest acquisitions are kept.
    Each band is read onto ``area_grid(bbox, resolution)``, masked with the SCL band
    (``landcover.sentinel2.SCL_MASK``) and nodata, converted to reflectance (asset scale,
    :func:`~landcover.composite.boa_offset`) and reduced with a per-pixel median. The
    output is uint16 DN = round(reflectance * 10000) + 1000 with band scale 0.0001 and
    offset -0.1, nodata 0 where no clear observation.

    ``kind="local"``: ``root`` is one multi-band GeoTIFF (bands matched by description,
    else taken in order), a folder of ``<band>.tif`` files or a path pattern with
    ``{band}``; its DN are converted with
    ``scale`` and ``offset`` and reprojected onto the area grid (no cloud mask).

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
        SourceError: when the catalog / API cannot be read or no item matches.
        DataError: when an asset cannot be read or the composite is all nodata.
        ConfigError: on an unknown kind or band.

    """
    box = check_bbox(tuple(bbox), area)  # type: ignore[arg-type]
    bands = list(bands)
    grid = area_grid(box, resolution)
    if kind == "local":
        return _acquire_local_imagery(area, grid, root, bands, scale, offset, out)
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
            items = _search_items(area, box, str(root), collection, span, max_cloud)
            source = f"STAC API {root}"
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
    with rasterio.Env(**GDAL_ENV):
        masks = [[_clear_mask(area, item, grid) for item in acq.items] for acq in acquisitions]
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
        layers = (_composite_band(area, band, acquisitions, masks, grid) for band in bands)
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


def _clear_mask(area: str, item: pystac.Item, grid: Grid) -> np.ndarray:
    """Read an item's SCL band onto the area grid and return its clear-pixel mask."""
    path, _ = _asset_href(area, item, "SCL")
    scl = read_onto_grid(path, grid, f"SCL of item '{item.id}' (area '{area}')")
    mask = clear_mask(scl)
    logger.info("area %s: item %s, %.1f%% clear", area, item.id, 100 * mask.mean())
    return mask


def _composite_band(
    area: str,
    band: str,
    acquisitions: Sequence[Acquisition],
    masks: Sequence[Sequence[np.ndarray]],
    grid: Grid,
) -> np.ndarray:
    """Compute one band's median reflectance over the acquisitions (NaN: no clear value)."""
    layers = []
    for acq, acq_masks in zip(acquisitions, masks, strict=True):
        parts = []
        for item, clear in zip(acq.items, acq_masks, strict=True):
            path, asset = _asset_href(area, item, band)
            dn = read_onto_grid(path, grid, f"band {band} of item '{item.id}' (area '{area}')")
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
) -> list[pystac.Item]:
    """Search a STAC API for the items of a collection over a bbox and dates.

    Raises:
        SourceError: when the API cannot be reached or answers with an error.

    """
    datetime = f"{span[0].isoformat()}/{span[1].isoformat()}"
    try:
        client = pystac_client.Client.open(url)
        search = client.search(
            collections=[collection],
            bbox=list(bbox),
            datetime=datetime,
            query={"eo:cloud_cover": {"lte": max_cloud}},
            max_items=MAX_SEARCH_ITEMS,
        )
        items = list(search.items())
    except (APIError, requests.RequestException, pystac.STACError, OSError) as err:
        raise SourceError(
            f"Area '{area}': the STAC API search at {url} (collection {collection}, bbox "
            f"{list(bbox)}, datetime {datetime}) failed: {err}. Fix: check imagery.root, "
            "imagery.collection and the network connection."
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
    with open_raster(path, f"imagery of area '{area}'") as src:
        descriptions = list(src.descriptions)
        count = src.count
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
) -> Path:
    """Reproject a local image (one file, or one file per band) onto the area grid."""
    sources = _local_bands(area, str(root), bands)

    def layers() -> Any:
        for band, (path, index) in zip(bands, sources, strict=True):
            # the VRT turns the file's own nodata into NODATA
            dn = read_onto_grid(path, grid, f"band {band} of area '{area}'", band=index)
            yield to_reflectance(dn, scale, offset, nodata=NODATA)

    tags = {
        "source": str(root),
        "items": json.dumps([]),
        "dates": json.dumps([]),
        "licence": "see the source of the local imagery",
        "area": area,
    }
    with rasterio.Env(**GDAL_ENV):
        _write_imagery(area, grid, bands, layers(), tags, out)
    return Path(out)
