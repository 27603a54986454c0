"""The demo bucket's writers: WorldCover tiles, Sentinel-2 COGs and a static STAC catalog.

:func:`make_demo_bucket` writes a local folder that looks like ESA WorldCover v200 tiles
plus Sentinel-2 L2A COGs in the Earth Search layout with a static STAC catalog, so the
real reading code runs offline on it (see ``docs/demo.md``). Labels are the area's map
reprojected (nearest) onto the WorldCover EPSG:4326 pixel grid; beside each map tile an
InputQuality tile (3 bands at 60 m, as the real ones) is derived from the demo's clouds
(:func:`input_quality`). This is the I/O edge of the generator (:mod:`.landscapes`,
:mod:`.radiometry`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pystac
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.io import MemoryFile
from rasterio.warp import Resampling, reproject, transform
from rasterio.windows import Window

from landcover.errors import ConfigError
from landcover.grid import (
    WORLDCOVER_PIXEL_DEG,
    WORLDCOVER_TILE_DEG,
    BBox,
    check_bbox,
    worldcover_tiles,
)
from landcover.io import atomic_path, gtiff_profile, to_cog
from landcover.sources.demo.landscapes import (
    BARE,
    BUILT,
    CROP,
    GRASS,
    LANDSCAPES,
    MANGROVE,
    MOSS,
    SHRUB,
    SNOW,
    TREE,
    WATER,
    WETLAND,
    Landscape,
)
from landcover.sources.demo.radiometry import DemoArea, synthesize_area
from landcover.sources.sentinel2 import ASSET_KEYS, BAND_RESOLUTION
from landcover.sources.worldcover import (  # the layout the reader reads
    QUALITY_NODATA,
    quality_paths,
    worldcover_path,
)

log = logging.getLogger(__name__)


WORLDCOVER_COLOURS: dict[int, tuple[int, int, int, int]] = {
    0: (0, 0, 0, 0),
    TREE: (0, 100, 0, 255),
    SHRUB: (255, 187, 34, 255),
    GRASS: (255, 255, 76, 255),
    CROP: (240, 150, 255, 255),
    BUILT: (250, 0, 0, 255),
    BARE: (180, 180, 180, 255),
    SNOW: (240, 240, 240, 255),
    WATER: (0, 100, 200, 255),
    WETLAND: (0, 150, 160, 255),
    MANGROVE: (0, 207, 117, 255),
    MOSS: (250, 230, 160, 255),
}
"""The official WorldCover colour table (code -> RGBA); 0 is nodata."""


_WAVELENGTHS = {  # centre wavelength and FWHM in micrometres, common name
    "B02": (0.490, 0.098, "blue"),
    "B03": (0.560, 0.045, "green"),
    "B04": (0.665, 0.038, "red"),
    "B05": (0.704, 0.019, "rededge"),
    "B06": (0.740, 0.018, "rededge"),
    "B07": (0.783, 0.028, "rededge"),
    "B08": (0.842, 0.145, "nir"),
    "B8A": (0.865, 0.033, "nir08"),
    "B11": (1.610, 0.143, "swir16"),
    "B12": (2.190, 0.242, "swir22"),
}


LABEL_MARGIN_DEG = 0.002
"""Label margin around an area's bbox, degrees (inside the imagery margin)."""


PROCESSING_BASELINE = "05.10"


S2_PREFIX = "sentinel-s2-l2a-cogs"

COLLECTION_ID = "sentinel-2-l2a"


_STAC_EXTENSIONS = [
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "https://stac-extensions.github.io/mgrs/v1.0.0/schema.json",
]


def mgrs_square(lon: float, lat: float) -> tuple[int, str, str]:
    """Return the MGRS grid zone and 100 km square of a point, e.g. ``(28, "P", "CB")``.

    UTM zone, latitude band (8 degree bands C..X) and the two letters of the 100 km
    square (AA lettering, used by WGS 84 and the Sentinel-2 tiling grid). Norway and
    Svalbard zone exceptions are ignored.
    """
    zone = min(int((lon + 180) // 6) + 1, 60)
    band = "CDEFGHJKLMNPQRSTUVWXX"[min(max(int((lat + 80) // 8), 0), 20)]
    easting, northing = transform(
        "EPSG:4326", f"EPSG:{(32600 if lat >= 0 else 32700) + zone}", [lon], [lat]
    )
    columns = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    column = columns[((zone - 1) % 3) * 8 + int(easting[0] // 100_000) - 1]
    rows = "ABCDEFGHJKLMNPQRSTUV"
    row = rows[(int(northing[0] // 100_000) + (5 if zone % 2 == 0 else 0)) % 20]
    return zone, band, column + row


@dataclass(frozen=True)
class LabelWindow:
    """WorldCover codes on a window of the global 1/12000 degree pixel grid.

    Attributes:
        row: global row of the window's top (0 at 90 N).
        col: global column of the window's left (0 at 180 W).
        codes: uint8 codes, 0 = nodata.

    """

    row: int
    col: int
    codes: np.ndarray


def worldcover_labels(area: DemoArea) -> LabelWindow:
    """Reproject an area's class map onto the WorldCover grid (nearest).

    The window covers the bbox plus :data:`LABEL_MARGIN_DEG`, snapped outwards to the
    1/12000 degree pixel edges of the real tiles.
    """
    per_deg = round(1 / WORLDCOVER_PIXEL_DEG)
    west, south, east, north = area.bbox
    col0 = math.floor((west - LABEL_MARGIN_DEG + 180) * per_deg + 1e-6)
    col1 = math.ceil((east + LABEL_MARGIN_DEG + 180) * per_deg - 1e-6)
    row0 = math.floor((90 - north - LABEL_MARGIN_DEG) * per_deg + 1e-6)
    row1 = math.ceil((90 - south + LABEL_MARGIN_DEG) * per_deg - 1e-6)
    codes = np.zeros((row1 - row0, col1 - col0), dtype=np.uint8)
    reproject(
        source=area.codes,
        destination=codes,
        src_transform=area.grid.transform,
        src_crs=area.grid.crs,
        src_nodata=0,
        dst_transform=_global_transform(row0, col0),
        dst_crs="EPSG:4326",
        dst_nodata=0,
        resampling=Resampling.nearest,
    )
    return LabelWindow(row0, col0, codes)


def _global_transform(row: int, col: int, per_deg: int | None = None) -> Affine:
    """Transform of a window whose top-left pixel is (row, col) on a global grid.

    The grid has ``per_deg`` pixels per degree (default: WorldCover's 12000).
    """
    per_deg = per_deg or round(1 / WORLDCOVER_PIXEL_DEG)
    return Affine(1 / per_deg, 0.0, col / per_deg - 180, 0.0, -1 / per_deg, 90 - row / per_deg)


QUALITY_PER_DEG = 2000
"""InputQuality pixels per degree (0.0005 degree, about 60 m: 6 x 6 map pixels)."""

INVALID_SCL = (3, 8, 9, 10)
"""SCL classes that make a look invalid for WorldCover: cloud shadow, cloud, cirrus."""


def input_quality(acquisitions: Sequence[np.ndarray]) -> np.ndarray:
    """The InputQuality bands of an area from its dates' SCL (pure).

    Band 1: Sentinel-1 looks (two per date: ascending and descending passes); band 2:
    Sentinel-2 looks (the dates that imaged the pixel, SCL != 0); band 3: percentage
    of those looks that were cloud, cloud shadow or cirrus (100 where none imaged it).

    Args:
        acquisitions: the SCL of each date, (rows, cols) each.

    Returns:
        float32 (3, rows, cols) on the SCL grid.

    """
    scl = np.stack(acquisitions)
    looks = (scl != 0).sum(axis=0)
    invalid = np.isin(scl, INVALID_SCL).sum(axis=0)
    percent = np.where(looks > 0, 100.0 * invalid / np.maximum(looks, 1), 100.0)
    s1 = np.full(looks.shape, 2 * len(acquisitions))
    return np.stack([s1, looks, percent]).astype(np.float32)


@dataclass(frozen=True)
class QualityWindow:
    """InputQuality bands on a window of the global 1/2000 degree grid.

    Attributes:
        row: global row of the window's top (0 at 90 N).
        col: global column of the window's left (0 at 180 W).
        values: int16 (3, rows, cols), -1 = nodata.

    """

    row: int
    col: int
    values: np.ndarray


def worldcover_quality(area: DemoArea, labels: LabelWindow) -> QualityWindow:
    """Average an area's InputQuality onto the 60 m grid under its label window.

    The window is the label window snapped outwards to the 60 m pixel edges (6 map
    pixels); pixels outside the imagery are nodata (-1).
    """
    step = round(1 / WORLDCOVER_PIXEL_DEG) // QUALITY_PER_DEG
    h, w = labels.codes.shape
    row0, col0 = labels.row // step, labels.col // step
    row1, col1 = -(-(labels.row + h) // step), -(-(labels.col + w) // step)
    bands = input_quality([acq.bands["SCL"] for acq in area.acquisitions])
    t = area.grid.transform
    res = BAND_RESOLUTION["SCL"]
    values = np.full((3, row1 - row0, col1 - col0), np.nan, dtype=np.float32)
    reproject(
        source=bands,
        destination=values,
        src_transform=Affine(res, 0.0, t.c, 0.0, -res, t.f),
        src_crs=area.grid.crs,
        dst_transform=_global_transform(row0, col0, QUALITY_PER_DEG),
        dst_crs="EPSG:4326",
        dst_nodata=np.nan,
        resampling=Resampling.average,
    )
    out = np.where(np.isnan(values), QUALITY_NODATA, np.rint(values)).astype(np.int16)
    return QualityWindow(row0, col0, out)


def _write_cog(
    path: Path,
    array: np.ndarray,
    *,
    crs: str,
    transform: Affine,
    resampling: str,
    description: str,
) -> None:
    """Write one band as a deflate COG with internal overviews, atomically."""
    profile = gtiff_profile(crs, transform, array.shape, 1, array.dtype, 0, codec="none")
    with MemoryFile() as memory, memory.open(**profile) as source:
        source.write(array, 1)
        source.set_band_description(1, description)
        with atomic_path(path) as tmp:
            to_cog(source, tmp, resampling, predictor=2, overview_count=2)


def _write_sentinel2(root: Path, area: DemoArea, taken: set[str]) -> list[pystac.Item]:
    """Write an area's band COGs in the Earth Search layout; return its STAC items."""
    west, south, east, north = area.bbox
    zone, band, square = mgrs_square((west + east) / 2, (south + north) / 2)
    left, bottom, right, top = area.grid.bounds
    lons, lats = transform(
        area.grid.crs,
        "EPSG:4326",
        [left, right, right, left, left],
        [top, top, bottom, bottom, top],
    )
    ring = [list(p) for p in zip(lons, lats, strict=True)]
    footprint = {"type": "Polygon", "coordinates": [ring]}
    bbox = [min(lons), min(lats), max(lons), max(lats)]
    items = []
    for acq in area.acquisitions:
        platform = "S2A" if (acq.datetime.toordinal() // 5) % 2 == 0 else "S2B"
        sequence = 0
        stem = f"{platform}_{zone}{band}{square}_{acq.datetime:%Y%m%d}"
        while (item_id := f"{stem}_{sequence}_L2A") in taken:  # two areas in one square
            sequence += 1
        taken.add(item_id)
        folder = (
            root
            / S2_PREFIX
            / str(zone)
            / band
            / square
            / f"{acq.datetime.year}"
            / f"{acq.datetime.month}"
            / item_id
        )
        item = pystac.Item(
            id=item_id,
            geometry=footprint,
            bbox=bbox,
            datetime=acq.datetime,
            properties={
                "platform": f"sentinel-{platform[1:].lower()}",
                "constellation": "sentinel-2",
                "instruments": ["msi"],
                "eo:cloud_cover": acq.cloud_cover,
                "proj:code": area.grid.crs,
                "mgrs:utm_zone": zone,
                "mgrs:latitude_band": band,
                "mgrs:grid_square": square,
                "s2:processing_baseline": PROCESSING_BASELINE,
                "s2:product_type": "S2MSI2A",
                "earthsearch:boa_offset_applied": False,
                "landcover:demo": {"area": area.name, "landscape": area.landscape},
            },
            stac_extensions=list(_STAC_EXTENSIONS),
        )
        for name, array in acq.bands.items():
            res = BAND_RESOLUTION[name]
            t = area.grid.transform
            band_transform = Affine(res, 0.0, t.c, 0.0, -res, t.f)
            path = folder / f"{name}.tif"
            _write_cog(
                path,
                array,
                crs=area.grid.crs,
                transform=band_transform,
                resampling="nearest" if name == "SCL" else "average",
                description=name,
            )
            item.add_asset(ASSET_KEYS[name], _asset(str(path), name, array.shape, band_transform))
        items.append(item)
    return items


def _asset(href: str, band: str, shape: tuple[int, ...], band_transform: Affine) -> pystac.Asset:
    """Describe one band COG as an Earth Search style asset."""
    res = BAND_RESOLUTION[band]
    extra: dict[str, object] = {
        "gsd": res,
        "proj:shape": [int(shape[0]), int(shape[1])],
        "proj:transform": list(band_transform)[:6],
    }
    if band == "SCL":
        extra["raster:bands"] = [
            {"nodata": 0, "data_type": "uint8", "spatial_resolution": res, "unit": "none"}
        ]
        return pystac.Asset(
            href,
            title="Scene classification map (SCL)",
            media_type=pystac.MediaType.COG,
            roles=["data"],
            extra_fields=extra,
        )
    centre, fwhm, common = _WAVELENGTHS[band]
    extra["eo:bands"] = [
        {
            "name": band,
            "common_name": common,
            "center_wavelength": centre,
            "full_width_half_max": fwhm,
        }
    ]
    extra["raster:bands"] = [
        {
            "nodata": 0,
            "data_type": "uint16",
            "bits_per_sample": 15,
            "spatial_resolution": res,
            "scale": 0.0001,
            "offset": -0.1,
        }
    ]
    return pystac.Asset(
        href,
        title=f"{band} ({common}) - {res}m",
        media_type=pystac.MediaType.COG,
        roles=["data", "reflectance"],
        extra_fields=extra,
    )


Pieces = dict[str, list[tuple[int, int, np.ndarray]]]
"""Tile name -> (global row, global column, array (..., rows, cols)) of each window part."""


def _split_by_tile(
    windows: Sequence[tuple[int, int, np.ndarray]], per_deg: int
) -> tuple[Pieces, dict[str, tuple[int, int, float, float]]]:
    """Cut windows of a global grid (row, col, array) at the 3 degree tile borders.

    Returns:
        The parts of each tile, and each tile's (global row, global column, west, north).

    """
    tile_px = per_deg * WORLDCOVER_TILE_DEG
    pieces: Pieces = {}
    origins: dict[str, tuple[int, int, float, float]] = {}
    for row, col, array in windows:
        h, w = array.shape[-2:]
        west, east = col / per_deg - 180, (col + w) / per_deg - 180
        south, north = 90 - (row + h) / per_deg, 90 - row / per_deg
        for tile, (tw, _, _, tn) in worldcover_tiles((west, south, east, north)):
            trow, tcol = round((90 - tn) * per_deg), round((tw + 180) * per_deg)
            r0, r1 = max(row, trow), min(row + h, trow + tile_px)
            c0, c1 = max(col, tcol), min(col + w, tcol + tile_px)
            if r0 >= r1 or c0 >= c1:
                continue
            part = array[..., r0 - row : r1 - row, c0 - col : c1 - col]
            pieces.setdefault(tile, []).append((r0, c0, part))
            origins[tile] = (trow, tcol, tw, tn)
    return pieces, origins


def _union_grid(
    parts: Sequence[tuple[int, int, np.ndarray]],
    origin: tuple[int, int, float, float],
    per_deg: int,
) -> tuple[int, int, tuple[int, int], Affine]:
    """Return the grid of one file that covers a tile's parts.

    Returns:
        Its first global row and column, its shape, and its transform (pixel edges at
        the tile's corner + k / ``per_deg`` degrees).

    """
    trow, tcol, west, north = origin
    r0, c0 = min(r for r, _, _ in parts), min(c for _, c, _ in parts)
    r1 = max(r + p.shape[-2] for r, _, p in parts)
    c1 = max(c + p.shape[-1] for _, c, p in parts)
    transform = Affine(
        1 / per_deg,
        0.0,
        west + (c0 - tcol) / per_deg,
        0.0,
        -1 / per_deg,
        north - (r0 - trow) / per_deg,
    )
    return r0, c0, (r1 - r0, c1 - c0), transform


def _write_input_quality(root: Path, windows: Sequence[QualityWindow], seed: int) -> None:
    """Write one InputQuality COG per tile beside its map tile (int16, 3 bands, nodata -1).

    Each file covers the union of the windows' parts inside its tile, on the tile's
    own 60 m grid (as the real 6000 x 6000 px tiles); pixels outside them are nodata.
    """
    per_deg = QUALITY_PER_DEG
    pieces, origins = _split_by_tile([(w.row, w.col, w.values) for w in windows], per_deg)
    for tile, parts in sorted(pieces.items()):
        r0, c0, shape, transform = _union_grid(parts, origins[tile], per_deg)
        values = np.full((3, *shape), QUALITY_NODATA, dtype=np.int16)
        for r, c, part in parts:
            target = values[:, r - r0 : r - r0 + part.shape[-2], c - c0 : c - c0 + part.shape[-1]]
            known = part[1] != QUALITY_NODATA
            target[:, known] = part[:, known]
        profile = gtiff_profile(
            "EPSG:4326", transform, shape, 3, "int16", QUALITY_NODATA, codec="none"
        )
        with MemoryFile() as memory, memory.open(**profile) as source:
            source.write(values)
            source.update_tags(
                product_type="Input Quality Layer (synthetic demo)",
                product_version="V2.0.0",
                product_tile=tile,
                description="Band 1: Number of Sentinel-1 GAMMA0 observations, Band 2: Number "
                "of Sentinel-2 L2A observations, Band 3: Percentage (0-100) of invalid S2 "
                "observations (cloud, cloud shadow, cirrus)",
                demo=f"derived from the demo's SCL by landcover.demo (seed {seed})",
            )
            path = quality_paths(worldcover_path(root, "v200", tile))[0]
            with atomic_path(path) as tmp:
                to_cog(source, tmp, "nearest", predictor=2, overview_count=1)


def _write_worldcover(root: Path, windows: Sequence[LabelWindow], seed: int) -> list[str]:
    """Write one WorldCover COG per 3 degree tile touched by the windows; return tile names.

    Each file covers the union of the windows' parts inside its tile, on the tile's own
    pixel grid; pixels outside the windows are 0 (nodata) and take no space (sparse).
    """
    per_deg = round(1 / WORLDCOVER_PIXEL_DEG)
    pieces, origins = _split_by_tile([(w.row, w.col, w.codes) for w in windows], per_deg)
    for tile, parts in sorted(pieces.items()):
        r0, c0, shape, file_transform = _union_grid(parts, origins[tile], per_deg)
        sparse = root / f".{tile}.sparse.tif"
        profile = gtiff_profile(
            "EPSG:4326",
            file_transform,
            shape,
            1,
            "uint8",
            0,
            blockxsize=1024,
            blockysize=1024,
            sparse_ok=True,
        )
        with rasterio.open(
            sparse,
            "w+",
            **profile,
        ) as out:
            for r, c, part in parts:
                window = Window(c - c0, r - r0, part.shape[1], part.shape[0])
                merged = out.read(1, window=window)
                merged[part != 0] = part[part != 0]
                out.write(merged, 1, window=window)
            out.write_colormap(1, WORLDCOVER_COLOURS)
            out.update_tags(
                product_type="ESA WorldCover 10m 2021 v200 (synthetic demo)",
                product_version="V2.0.0",
                product_grid=f"{tile} (3x3 degree tile, sub-extent)",
                demo=f"synthetic labels drawn by landcover.demo (seed {seed})",
            )
            out.set_band_description(1, "Map")
        levels = max(1, math.ceil(math.log2(max(shape) / 256)))  # down to ~256 px
        # a small block cache: the default (5 % of RAM) fills up with the empty blocks
        with (
            atomic_path(worldcover_path(root, "v200", tile)) as tmp,
            rasterio.Env(GDAL_CACHEMAX=64),
        ):
            to_cog(sparse, tmp, "nearest", blocksize=1024, overview_count=levels, sparse_ok=True)
        sparse.unlink()
    return sorted(pieces)


def _write_worldcover_grid(root: Path, tiles: Sequence[str]) -> None:
    """Write ``esa_worldcover_grid.geojson`` listing the tiles (property ``ll_tile``)."""
    features = []
    for tile in tiles:
        lat = int(tile[1:3]) * (1 if tile[0] == "N" else -1)
        lon = int(tile[4:7]) * (1 if tile[3] == "E" else -1)
        step = WORLDCOVER_TILE_DEG
        ring = [
            [lon, lat],
            [lon + step, lat],
            [lon + step, lat + step],
            [lon, lat + step],
            [lon, lat],
        ]
        features.append(
            {
                "type": "Feature",
                "properties": {"ll_tile": tile},
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            }
        )
    path = root / "v200" / "2021" / "esa_worldcover_grid.geojson"
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"type": "FeatureCollection", "features": features}, indent=1))


def _write_stac(root: Path, items: Sequence[pystac.Item], seed: int) -> None:
    """Write the static catalog: catalog -> collection -> items, all links relative."""
    catalog = pystac.Catalog(
        id="landcover-demo",
        description=f"Synthetic demo bucket of the landcover workflow (seed {seed}).",
    )
    bboxes = np.array([item.bbox for item in items])
    times = sorted(item.datetime for item in items if item.datetime is not None)
    collection = pystac.Collection(
        id=COLLECTION_ID,
        description="Synthetic Sentinel-2 L2A in the Earth Search layout (landcover demo).",
        extent=pystac.Extent(
            pystac.SpatialExtent([[*bboxes[:, :2].min(axis=0), *bboxes[:, 2:].max(axis=0)]]),
            pystac.TemporalExtent([[times[0], times[-1]]]),
        ),
        license="other",
    )
    for item in items:
        collection.add_item(item)
    catalog.add_child(collection)
    catalog.normalize_hrefs(str(root / "stac"))
    for item in items:
        item.make_asset_hrefs_relative()
    catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)


def _check_areas(areas: Mapping[str, Mapping[str, object]]) -> list[tuple[str, BBox, Landscape]]:
    """Validate the areas: a bbox and a known landscape each."""
    if not areas:
        raise ConfigError("demo: `areas` is empty; add at least one area with bbox and landscape.")
    checked = []
    for name, spec in areas.items():
        landscape = spec.get("landscape")
        if landscape not in LANDSCAPES:
            raise ConfigError(
                f"Area '{name}': landscape {landscape!r} is not one the demo can draw; set "
                f"`landscape` to one of {list(LANDSCAPES)}."
            )
        bbox = check_bbox(spec.get("bbox", ()), name)  # type: ignore[arg-type]
        checked.append((str(name), bbox, landscape))  # type: ignore[arg-type]
    return checked


def _publish(staging: Path, root: Path) -> None:
    """Give the staged bucket ordinary permissions and move it to ``root`` (replacing it)."""
    umask = os.umask(0o022)  # read the umask (temporary files and folders are private)
    os.umask(umask)
    for folder, _, files in os.walk(staging):
        Path(folder).chmod(0o777 & ~umask)
        for name in files:
            Path(folder, name).chmod(0o666 & ~umask)
    if root.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old.", dir=root.parent))
        root.rename(old / root.name)
        staging.rename(root)
        shutil.rmtree(old)
    else:
        staging.rename(root)


def make_demo_bucket(
    root: str | Path,
    areas: Mapping[str, Mapping[str, object]],
    dates: Sequence[str | dt.date],
    n_dates: int,
    seed: int,
) -> Path:
    """Write the demo bucket: WorldCover tiles (map, InputQuality), Sentinel-2 COGs, STAC.

    Everything is written into a hidden folder beside ``root`` that is renamed to
    ``root`` at the end, so the bucket appears complete or not at all. A previous
    bucket at ``root`` is replaced.

    Args:
        root: the bucket folder to create.
        areas: area name -> ``{"bbox": [w, s, e, n], "landscape": kind}``.
        dates: (start, end), ISO dates, inclusive.
        n_dates: acquisitions per area.
        seed: the seed; the same seed gives the same arrays.

    Returns:
        ``root`` as a Path.

    Raises:
        ConfigError: on an unknown landscape, a bad bbox or date range, or when ``root``
            exists and is not a demo bucket.

    """
    # absolute: the catalog's hrefs are made relative from absolute paths (pystac)
    root = Path(root).resolve()
    checked = _check_areas(areas)
    if len(dates) != 2:
        raise ConfigError(f"demo: `dates` must be [start, end], got {list(dates)}.")
    try:
        start, end = (dt.date.fromisoformat(str(d)) for d in dates)
    except ValueError as err:
        raise ConfigError(
            f"demo: `dates` {list(dates)} must be ISO dates (YYYY-MM-DD): {err}"
        ) from err
    if root.exists() and any(root.iterdir()) and not (root / "stac" / "catalog.json").exists():
        raise ConfigError(
            f"demo: '{root}' exists and is not a demo bucket; refusing to replace it. Choose an "
            "empty or new folder for the bucket, or remove it first."
        )

    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        items: list[pystac.Item] = []
        windows, qualities = [], []
        taken: set[str] = set()
        for name, bbox, landscape in checked:
            area = synthesize_area(name, bbox, landscape, (start, end), n_dates, seed)
            items += _write_sentinel2(staging, area, taken)
            windows.append(worldcover_labels(area))
            qualities.append(worldcover_quality(area, windows[-1]))
            log.info(
                "demo area '%s' (%s): %d x %d px, %d dates, cloud cover %s",
                name,
                landscape,
                area.grid.width,
                area.grid.height,
                len(area.acquisitions),
                [a.cloud_cover for a in area.acquisitions],
            )
        tiles = _write_worldcover(staging, windows, seed)
        _write_input_quality(staging, qualities, seed)
        _write_worldcover_grid(staging, tiles)
        _write_stac(staging, items, seed)
        log.info("demo WorldCover tiles: %s", tiles)
        _publish(staging, root)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    log.info("demo bucket written to %s", root)
    return root
