"""The embedded demo source: a synthetic, deterministic bucket laid out like the public ones.

:func:`make_demo_bucket` writes a local folder that looks like ESA WorldCover v200 tiles
plus Sentinel-2 L2A COGs in the Earth Search layout with a static STAC catalog, so the
real reading code runs offline on it (see ``docs/demo.md``).

Each area's land cover is drawn once, as ESA WorldCover codes on the area's 10 m UTM
grid (plus a margin), by a landscape generator (``lake``, ``city``, ``forest``,
``delta``) made of spatially coherent shapes: fields, canals, rivers, coastlines, street
blocks. Both sources derive from that one map:

- imagery: per-class surface-reflectance signatures with within-class variability
  (smooth random fields, per-field vigour), texture, sensor noise, a slight blur, a
  radiometric shift per area and a variation per date; then clouds, cloud shadows and
  cirrus, marked in the Scene Classification Layer (SCL);
- labels: the map reprojected (nearest) onto the WorldCover EPSG:4326 pixel grid.

The functions that synthesise arrays are pure (a seeded generator in, arrays out); the
writers (``_write_*`` and :func:`make_demo_bucket`) are the I/O edge.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import shutil
import tempfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pystac
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.io import MemoryFile
from rasterio.warp import Resampling, reproject, transform
from rasterio.windows import Window
from scipy import ndimage

from landcover.acquire import worldcover_path  # the layout the reader reads
from landcover.errors import ConfigError
from landcover.grid import (
    WORLDCOVER_PIXEL_DEG,
    WORLDCOVER_TILE_DEG,
    BBox,
    Grid,
    area_grid,
    check_bbox,
    worldcover_tiles,
)
from landcover.io import atomic_path
from landcover.sentinel2 import ASSET_KEYS, BAND_RESOLUTION

log = logging.getLogger(__name__)

Landscape = Literal["lake", "city", "forest", "delta"]
"""The kinds of landscape the generator draws."""

LANDSCAPES: tuple[str, ...] = ("lake", "city", "forest", "delta")
"""Accepted values of an area's ``landscape``."""

# ESA WorldCover v200 codes.
TREE, SHRUB, GRASS, CROP, BUILT, BARE = 10, 20, 30, 40, 50, 60
SNOW, WATER, WETLAND, MANGROVE, MOSS = 70, 80, 90, 95, 100

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

SPECTRAL_BANDS = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
"""The synthesised reflectance bands, in wavelength order (the order of the tables below)."""

# Surface reflectance per WorldCover code, bands in SPECTRAL_BANDS order. Typical L2A values
# for the Sahel / Guinean coast in the dry season (Senegal, where the demo areas lie).
SIGNATURES: dict[int, tuple[float, ...]] = {
    TREE: (0.030, 0.055, 0.040, 0.090, 0.200, 0.250, 0.280, 0.300, 0.170, 0.085),
    SHRUB: (0.055, 0.085, 0.105, 0.145, 0.200, 0.225, 0.240, 0.255, 0.300, 0.210),
    GRASS: (0.070, 0.105, 0.135, 0.175, 0.215, 0.240, 0.255, 0.270, 0.350, 0.260),
    CROP: (0.035, 0.070, 0.045, 0.120, 0.300, 0.380, 0.420, 0.440, 0.230, 0.120),
    BUILT: (0.100, 0.120, 0.140, 0.160, 0.175, 0.185, 0.195, 0.205, 0.240, 0.210),
    BARE: (0.140, 0.190, 0.250, 0.285, 0.310, 0.325, 0.340, 0.355, 0.450, 0.380),
    SNOW: (0.900, 0.900, 0.880, 0.860, 0.840, 0.820, 0.800, 0.780, 0.100, 0.060),
    WATER: (0.060, 0.070, 0.045, 0.035, 0.022, 0.018, 0.015, 0.012, 0.006, 0.004),
    WETLAND: (0.040, 0.065, 0.055, 0.095, 0.170, 0.210, 0.230, 0.240, 0.150, 0.075),
    MANGROVE: (0.025, 0.045, 0.030, 0.070, 0.190, 0.250, 0.270, 0.285, 0.120, 0.050),
    MOSS: (0.050, 0.070, 0.080, 0.110, 0.160, 0.190, 0.210, 0.220, 0.200, 0.120),
}
"""Mean surface reflectance per WorldCover code (bands in :data:`SPECTRAL_BANDS` order)."""

# What a pixel's "vigour" (-1..1) does to its spectrum: greener vegetation (more NIR and
# red edge, less red and SWIR), more turbid water, brighter soil and roofs.
_GREENING = (-0.008, -0.005, -0.020, -0.010, 0.025, 0.045, 0.055, 0.055, -0.040, -0.035)
_TURBIDITY = (0.012, 0.018, 0.018, 0.015, 0.008, 0.005, 0.004, 0.003, 0.0, 0.0)
_VIGOUR_GAIN = {TREE: 0.6, SHRUB: 0.8, GRASS: 1.0, CROP: 2.0, WETLAND: 1.0, MANGROVE: 0.5}
_TEXTURE = {
    TREE: 0.12,
    SHRUB: 0.10,
    GRASS: 0.06,
    CROP: 0.05,
    BUILT: 0.15,
    BARE: 0.05,
    SNOW: 0.02,
    WATER: 0.02,
    WETLAND: 0.08,
    MANGROVE: 0.10,
    MOSS: 0.06,
}
# Reflectance of a thick cloud and of a unit of cirrus, bands in SPECTRAL_BANDS order.
_CLOUD = (0.56, 0.55, 0.56, 0.57, 0.58, 0.58, 0.58, 0.58, 0.45, 0.33)
_CIRRUS = (0.11, 0.11, 0.11, 0.11, 0.11, 0.11, 0.11, 0.11, 0.09, 0.07)
_HAZE = (0.020, 0.015, 0.010, 0.008, 0.006, 0.005, 0.004, 0.004, 0.001, 0.0005)

# SCL of a clear pixel of each code: 4 vegetation, 5 not vegetated, 6 water, 11 snow.
_SCL_CLEAR = {
    TREE: 4,
    SHRUB: 4,
    GRASS: 4,
    CROP: 4,
    BUILT: 5,
    BARE: 5,
    SNOW: 11,
    WATER: 6,
    WETLAND: 4,
    MANGROVE: 4,
    MOSS: 5,
}

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

MARGIN_M = 240
"""Imagery margin around an area's grid, metres (a multiple of 60)."""

LABEL_MARGIN_DEG = 0.002
"""Label margin around an area's bbox, degrees (inside the imagery margin)."""

DN_OFFSET = 1000
"""Processing baseline >= 04.00: DN = 10000 * reflectance + 1000."""

PROCESSING_BASELINE = "05.10"
S2_PREFIX = "sentinel-s2-l2a-cogs"
COLLECTION_ID = "sentinel-2-l2a"

_STAC_EXTENSIONS = [
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "https://stac-extensions.github.io/mgrs/v1.0.0/schema.json",
]


# --------------------------------------------------------------------------- random fields


def smooth_field(
    rng: np.random.Generator, shape: tuple[int, int], scale: float | tuple[float, float]
) -> np.ndarray:
    """Draw a zero-mean, unit-variance random field that varies over about ``scale`` pixels.

    White noise on a coarse lattice, smoothed up with cubic B-splines (fast at any scale).

    Args:
        rng: the random generator (consumed).
        shape: (rows, cols) of the field.
        scale: correlation length in pixels, or (rows, cols) lengths for streaky fields.

    Returns:
        float32 array of ``shape``.

    """
    sy, sx = (scale, scale) if np.isscalar(scale) else scale  # type: ignore[misc]
    sy, sx = max(float(sy), 1.0), max(float(sx), 1.0)
    coarse = rng.standard_normal((math.ceil(shape[0] / sy) + 4, math.ceil(shape[1] / sx) + 4))
    fine = ndimage.zoom(coarse, (sy, sx), order=3, mode="nearest", prefilter=False)
    oy, ox = int(sy), int(sx)
    field = fine[oy : oy + shape[0], ox : ox + shape[1]].astype(np.float32)
    field -= field.mean()
    return field / max(float(field.std()), 1e-6)


def _smooth_1d(rng: np.random.Generator, n: int, scale: float) -> np.ndarray:
    """Draw a zero-mean, unit-variance 1-D signal that varies over about ``scale`` samples."""
    signal = ndimage.gaussian_filter1d(rng.standard_normal(n + 4 * int(scale)), scale / 2)
    signal = signal[2 * int(scale) : 2 * int(scale) + n]
    return ((signal - signal.mean()) / max(float(signal.std()), 1e-6)).astype(np.float32)


def _coords(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Row and column coordinates of every pixel, float32."""
    rows, cols = np.indices(shape, dtype=np.float32)
    return rows, cols


@dataclass(frozen=True)
class _Parcels:
    """A rotated grid of rectangular parcels (fields or street blocks).

    Attributes:
        ids: parcel id per pixel.
        du: distance (px) to the nearest parcel edge across the first axis.
        dv: distance (px) to the nearest parcel edge across the second axis.
        eu: index of that nearest edge across the first axis.
        ev: index of that nearest edge across the second axis.
        count: number of parcel ids.

    """

    ids: np.ndarray
    du: np.ndarray
    dv: np.ndarray
    eu: np.ndarray
    ev: np.ndarray
    count: int


def _parcels(
    rng: np.random.Generator, shape: tuple[int, int], angle: float, size: tuple[int, int]
) -> _Parcels:
    """Cut the frame into rectangles of ``size`` (min, max) px, rotated by ``angle`` rad."""
    rows, cols = _coords(shape)
    u = cols * math.cos(angle) + rows * math.sin(angle)
    v = -cols * math.sin(angle) + rows * math.cos(angle)

    def cut(coord: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        lo, hi = float(coord.min()), float(coord.max())
        n = math.ceil((hi - lo) / size[0]) + 2
        start = lo - rng.uniform(0, size[0])
        edges = start + np.concatenate([[0.0], np.cumsum(rng.integers(size[0], size[1] + 1, n))])
        index = np.searchsorted(edges, coord, side="right")  # >= 1: edges[0] < lo
        below, above = coord - edges[index - 1], edges[index] - coord
        nearest = np.where(below < above, index - 1, index)
        return index, np.minimum(below, above), nearest, len(edges) + 1

    iu, du, eu, nu = cut(u)
    iv, dv, ev, nv = cut(v)
    return _Parcels(ids=iu * nv + iv, du=du, dv=dv, eu=eu, ev=ev, count=nu * nv)


def _meander(
    rng: np.random.Generator,
    shape: tuple[int, int],
    start: tuple[float, float],
    heading: float,
    wiggle: float,
    length: float,
) -> np.ndarray:
    """Points (row, col) of a meandering line, half a pixel apart.

    The heading swings smoothly around ``heading`` (radians, 0 = towards +col) by up to
    about ``2 * wiggle``; below pi/4 the line keeps progressing, like a river.
    """
    n = max(int(2 * length), 2)
    bend = _smooth_1d(rng, n, scale=rng.uniform(40, 90))
    theta = heading + wiggle * bend
    steps = 0.5 * np.stack([np.sin(theta), np.cos(theta)], axis=1)
    return np.asarray(start, dtype=np.float64) + np.cumsum(steps, axis=0)


def _distance_to(shape: tuple[int, int], points: np.ndarray) -> np.ndarray:
    """Distance (px) of every pixel to the nearest of ``points`` that lie in the frame."""
    mask = np.ones(shape, dtype=bool)
    rc = np.rint(points).astype(np.int64)
    inside = (rc[:, 0] >= 0) & (rc[:, 0] < shape[0]) & (rc[:, 1] >= 0) & (rc[:, 1] < shape[1])
    if not inside.any():
        return np.full(shape, np.inf, dtype=np.float32)
    mask[rc[inside, 0], rc[inside, 1]] = False
    return ndimage.distance_transform_edt(mask).astype(np.float32)


def _edge_start(
    rng: np.random.Generator, shape: tuple[int, int]
) -> tuple[tuple[float, float], float]:
    """Pick a start point just outside a random edge of the frame and a heading into it."""
    h, w = shape
    side = int(rng.integers(4))
    along = rng.uniform(0.2, 0.8)
    starts = [
        ((-2.0, along * w), math.pi / 2),
        ((h + 1.0, along * w), -math.pi / 2),
        ((along * h, -2.0), 0.0),
        ((along * h, w + 1.0), math.pi),
    ]
    start, heading = starts[side]
    return start, heading + rng.uniform(-0.4, 0.4)


# --------------------------------------------------------------------------- landscapes


@dataclass(frozen=True)
class Scene:
    """The land cover of an area, on its 10 m grid.

    Attributes:
        codes: uint8 ESA WorldCover codes.
        vigour: float32, about -1..1: greenness of vegetation, turbidity of water,
            brightness of soil and roofs; constant over a field or block.

    """

    codes: np.ndarray
    vigour: np.ndarray


def synthesize_landscape(
    kind: Landscape, shape: tuple[int, int], rng: np.random.Generator
) -> Scene:
    """Draw a landscape of the given kind.

    Args:
        kind: ``lake`` (lake, irrigated fields with canals, grass, shrub, bare, trees),
            ``city`` (coastal city: street blocks, bare lots, parks, ocean),
            ``forest`` (forest / cropland mosaic cut by meandering rivers, grass, shrub) or
            ``delta`` (channels lined by mangroves, herbaceous wetland, salt flats, grass,
            some cropland).
        shape: (rows, cols) of the 10 m grid.
        rng: the random generator (consumed).

    Raises:
        ConfigError: for an unknown kind.

    """
    match kind:
        case "lake":
            return _lake(shape, rng)
        case "city":
            return _city(shape, rng)
        case "forest":
            return _forest(shape, rng)
        case "delta":
            return _delta(shape, rng)
    raise ConfigError(f"Unknown landscape '{kind}'; choose one of {list(LANDSCAPES)}.")


def _lake(shape: tuple[int, int], rng: np.random.Generator) -> Scene:
    """Draw a lake in savanna with an irrigated perimeter of rectangular fields and canals."""
    h, w = shape
    rows, cols = _coords(shape)
    natural = smooth_field(rng, shape, 40) + 0.4 * smooth_field(rng, shape, 8)
    codes = np.full(shape, GRASS, dtype=np.uint8)
    codes[natural > 0.6] = SHRUB
    codes[natural < -1.0] = BARE
    codes[smooth_field(rng, shape, 4) > 2.0] = TREE  # scattered trees
    vigour = 0.5 * smooth_field(rng, shape, 15)

    cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
    ay, ax = rng.uniform(0.2, 0.3) * h, rng.uniform(0.12, 0.2) * w
    angle = rng.uniform(0, math.pi)
    dy, dx = rows - cy, cols - cx
    u = (dx * math.cos(angle) + dy * math.sin(angle)) / ax
    v = (-dx * math.sin(angle) + dy * math.cos(angle)) / ay
    lake = np.hypot(u, v) + 0.25 * smooth_field(rng, shape, 25) < 1.0
    shore = ndimage.distance_transform_edt(~lake)

    reach = rng.uniform(0.25, 0.4) * min(h, w)
    perimeter = (shore > 3) & (shore < reach) & (smooth_field(rng, shape, 60) > -0.5)
    fields = _parcels(rng, shape, angle=rng.uniform(-0.4, 0.4), size=(12, 32))
    state = rng.choice(
        np.array([CROP, GRASS, BARE], dtype=np.uint8), fields.count, p=[0.75, 0.1, 0.15]
    )
    codes[perimeter] = state[fields.ids][perimeter]
    vigour[perimeter] = rng.uniform(-1, 1, fields.count).astype(np.float32)[fields.ids][perimeter]
    main = int(np.median(fields.ev[perimeter])) if perimeter.any() else 0
    main_canal = (fields.ev == main) & (fields.dv < 1.5) & (shore < reach + 5)
    tree_row = (fields.ev == main) & (fields.dv >= 1.5) & (fields.dv < 3.0) & perimeter
    canals = perimeter & (fields.eu % 3 == 0) & (fields.du < 0.7)
    codes[tree_row] = TREE
    codes[canals | main_canal] = WATER
    vigour[canals | main_canal] = 0.6

    reeds = (shore > 0) & (shore <= 3) & (smooth_field(rng, shape, 20) > 0.3)
    codes[reeds] = WETLAND
    codes[lake] = WATER
    vigour[lake] = 0.4 * smooth_field(rng, shape, 30)[lake]
    return Scene(codes, vigour)


def _city(shape: tuple[int, int], rng: np.random.Generator) -> Scene:
    """Draw a coastal city: street blocks, bare lots and parks, ocean on one side."""
    h, w = shape
    rows, cols = _coords(shape)
    side = int(rng.integers(4))
    # inland: distance from the ocean-side edge; along: position along that edge
    inland, along, length = [
        (cols, rows, h),
        (w - 1 - cols, rows, h),
        (rows, cols, w),
        (h - 1 - rows, cols, w),
    ][side]
    across = w if side < 2 else h
    wiggle = _smooth_1d(rng, length, scale=rng.uniform(40, 120))
    coast = (rng.uniform(0.12, 0.28) + 0.04 * wiggle)[along.astype(np.int64)] * across
    beach_width = (3.0 + 1.5 * _smooth_1d(rng, length, 30))[along.astype(np.int64)]
    ocean = inland < coast
    beach = ~ocean & (inland < coast + np.maximum(beach_width, 1.0))

    blocks = _parcels(rng, shape, angle=rng.uniform(-0.5, 0.5), size=(8, 16))
    street = (blocks.du < 0.6) | (blocks.dv < 0.6)
    avenue = ((blocks.du < 1.6) & (blocks.eu % 5 == 0)) | ((blocks.dv < 1.6) & (blocks.ev % 5 == 0))
    centre = (rng.uniform(0.2, 0.8) * length, 0.0)
    reach = math.hypot(h, w)
    density = (
        1.1
        - np.hypot(along - centre[0], inland - coast) / reach
        + 0.35 * smooth_field(rng, shape, 50)
    )
    urban = density > 0.45

    natural = smooth_field(rng, shape, 25)
    codes = np.full(shape, GRASS, dtype=np.uint8)
    codes[natural > 0.5] = SHRUB
    codes[natural < -0.7] = BARE
    vigour = 0.5 * smooth_field(rng, shape, 15)
    kind = rng.choice(
        np.array([BUILT, BARE, GRASS], dtype=np.uint8), blocks.count, p=[0.86, 0.08, 0.06]
    )
    codes[urban] = kind[blocks.ids][urban]
    block_vigour = rng.uniform(-1, 1, blocks.count).astype(np.float32)
    vigour[urban] = block_vigour[blocks.ids][urban]
    codes[urban & (smooth_field(rng, shape, 3) > 1.8)] = TREE  # courtyard and street trees
    codes[urban & street] = BUILT
    park = urban & ~avenue & (smooth_field(rng, shape, 35) > 1.1)
    codes[park] = np.where(smooth_field(rng, shape, 4)[park] > -0.3, TREE, GRASS)
    codes[avenue] = BUILT
    vigour[street | avenue] = 0.0

    codes[beach] = BARE
    vigour[beach] = 0.8
    codes[ocean] = WATER
    vigour[ocean] = np.clip(1.0 - (coast - inland)[ocean] / 15.0, -1.0, 1.0)
    return Scene(codes, vigour)


def _forest(shape: tuple[int, int], rng: np.random.Generator) -> Scene:
    """Draw a forest / cropland mosaic cut by meandering rivers with gallery forest."""
    cover = smooth_field(rng, shape, 50) + 0.35 * smooth_field(rng, shape, 12)
    codes = np.where(smooth_field(rng, shape, 10) > 0, SHRUB, GRASS).astype(np.uint8)
    codes[cover > 0.05] = TREE
    vigour = 0.5 * smooth_field(rng, shape, 15)

    farmed = cover < -0.45
    fields = _parcels(rng, shape, angle=rng.uniform(-0.6, 0.6), size=(10, 25))
    state = rng.choice(
        np.array([CROP, GRASS, BARE], dtype=np.uint8), fields.count, p=[0.7, 0.2, 0.1]
    )
    codes[farmed] = state[fields.ids][farmed]
    vigour[farmed] = rng.uniform(-1, 1, fields.count).astype(np.float32)[fields.ids][farmed]

    length = 2.5 * sum(shape)
    start, heading = _edge_start(rng, shape)
    main = _meander(rng, shape, start, heading, wiggle=0.55, length=length)
    rivers = [(main, rng.uniform(2.5, 4.5))]
    inside = main[
        (main[:, 0] >= 0) & (main[:, 0] < shape[0]) & (main[:, 1] >= 0) & (main[:, 1] < shape[1])
    ]
    for _ in range(int(rng.integers(1, 3))):
        if len(inside) == 0:
            break
        fork = inside[int(rng.integers(len(inside)))]
        turn = rng.choice([-1, 1]) * rng.uniform(0.6, 1.2)
        branch = _meander(rng, shape, tuple(fork), heading + turn, wiggle=0.6, length=length)
        rivers.append((branch, rng.uniform(1.0, 2.0)))
    for points, half_width in rivers:
        distance = _distance_to(shape, points)
        codes[distance < half_width + rng.uniform(3, 7)] = TREE  # gallery forest
        codes[distance < half_width] = WATER
        vigour[distance < half_width] = 0.3
    return Scene(codes, vigour)


def _delta(shape: tuple[int, int], rng: np.random.Generator) -> Scene:
    """Draw a mangrove delta: distributaries, tidal creeks, wetland, salt flats, fields."""
    h, w = shape
    length = 2.5 * (h + w)
    flow = rng.uniform(0, 2 * math.pi)
    centre = np.array([h / 2, w / 2])
    back = centre - 0.8 * max(h, w) * np.array([math.sin(flow), math.cos(flow)])
    across = np.array([math.cos(flow), -math.sin(flow)])
    water = np.zeros(shape, dtype=bool)
    channels = []
    for _ in range(int(rng.integers(2, 4))):
        start = back + across * rng.uniform(-0.4, 0.4) * max(h, w)
        points = _meander(
            rng, shape, tuple(start), flow + rng.uniform(-0.35, 0.35), wiggle=0.45, length=length
        )
        channels.append(points)
        water |= _distance_to(shape, points) < rng.uniform(2.5, 6.0)
    inside = np.concatenate(
        [p[(p[:, 0] >= 0) & (p[:, 0] < h) & (p[:, 1] >= 0) & (p[:, 1] < w)] for p in channels]
    )
    if len(inside):
        for _ in range(int(rng.integers(8, 15))):
            fork = inside[int(rng.integers(len(inside)))]
            turn = rng.choice([-1, 1]) * rng.uniform(0.6, 1.4)
            creek = _meander(
                rng,
                shape,
                tuple(fork),
                flow + turn,
                wiggle=0.8,
                length=rng.uniform(0.15, 0.5) * (h + w),
            )
            water |= _distance_to(shape, creek) < rng.uniform(0.8, 1.8)

    near = ndimage.distance_transform_edt(~water).astype(np.float32)
    height = smooth_field(rng, shape, 35) + near / 40.0
    codes = np.full(shape, GRASS, dtype=np.uint8)
    vigour = 0.5 * smooth_field(rng, shape, 15)
    codes[(height < 0.5) & (near < 45)] = WETLAND
    codes[(smooth_field(rng, shape, 25) > 0.9) & (height < 1.2)] = BARE  # salt flats (tannes)
    fields = _parcels(rng, shape, angle=rng.uniform(-0.6, 0.6), size=(10, 22))
    state = rng.choice(np.array([CROP, GRASS], dtype=np.uint8), fields.count, p=[0.7, 0.3])
    farmed = height > 1.6
    codes[farmed] = state[fields.ids][farmed]
    vigour[farmed] = rng.uniform(-1, 1, fields.count).astype(np.float32)[fields.ids][farmed]
    mangrove_width = 7.0 + 4.0 * smooth_field(rng, shape, 20)
    codes[(near > 0) & (near <= mangrove_width)] = MANGROVE
    codes[water] = WATER
    vigour[water] = 0.3 + 0.4 * smooth_field(rng, shape, 30)[water]
    return Scene(codes, vigour)


# --------------------------------------------------------------------------- spectra


def _code_table(values: Mapping[int, object], width: int, default: float = 0.0) -> np.ndarray:
    """Build a (256, width) float32 lookup table code -> value(s)."""
    table = np.full((256, width), default, dtype=np.float32)
    for code, value in values.items():
        table[code] = value
    return table


@dataclass(frozen=True)
class Radiometry:
    """An area's radiometric identity: its own class spectra and a per-band shift.

    Attributes:
        signatures: (256, 10) mean reflectance per code, perturbed per area and class.
        gain: (10,) per-band gain.
        offset: (10,) per-band offset (reflectance).

    """

    signatures: np.ndarray
    gain: np.ndarray
    offset: np.ndarray


def area_radiometry(rng: np.random.Generator) -> Radiometry:
    """Draw an area's class spectra (+-4 % per class and band) and band gain/offset."""
    signatures = _code_table(SIGNATURES, len(SPECTRAL_BANDS))
    signatures *= rng.normal(1.0, 0.04, signatures.shape).astype(np.float32)
    gain = rng.normal(1.0, 0.05, len(SPECTRAL_BANDS)).astype(np.float32)
    offset = rng.normal(0.0, 0.005, len(SPECTRAL_BANDS)).astype(np.float32)
    return Radiometry(signatures, gain, offset)


def surface_reflectance(
    scene: Scene, radiometry: Radiometry, rng: np.random.Generator
) -> np.ndarray:
    """Compute the cloud-free surface reflectance of a scene.

    Class signatures, moved along each class's vigour direction, modulated by a smooth
    brightness field and a class-dependent texture, blurred slightly (sensor PSF), then
    shifted by the area's gain and offset.

    Args:
        scene: the land cover.
        radiometry: the area's spectra and band shift.
        rng: the random generator (consumed).

    Returns:
        float32 (10, rows, cols) reflectance, bands in :data:`SPECTRAL_BANDS` order.

    """
    codes, shape = scene.codes, scene.codes.shape
    nb = len(SPECTRAL_BANDS)
    direction = _code_table({c: np.multiply(_GREENING, g) for c, g in _VIGOUR_GAIN.items()}, nb)
    direction[WATER] = _TURBIDITY
    for code in (BUILT, BARE):
        direction[code] = 0.12 * radiometry.signatures[code]
    texture = _code_table(_TEXTURE, 1)[:, 0]

    rho = radiometry.signatures.T[:, codes] + scene.vigour * direction.T[:, codes]
    brightness = 1.0 + 0.06 * smooth_field(rng, shape, 8)
    grain = 1.0 + texture[codes] * smooth_field(rng, shape, 1.5)
    rho *= brightness * grain
    rho = ndimage.gaussian_filter(rho, sigma=(0, 0.5, 0.5))
    rho = rho * radiometry.gain[:, None, None] + radiometry.offset[:, None, None]
    return np.clip(rho, 0.0, None).astype(np.float32)


# --------------------------------------------------------------------------- atmosphere


@dataclass(frozen=True)
class Sky:
    """What lies between the sensor and the ground on one date (all in 0..1, 10 m grid).

    Attributes:
        cloud: cloud opacity.
        shadow: cloud-shadow strength (only where the ground is not hidden by cloud).
        cirrus: cirrus optical thickness.
        valid: whether the pixel was imaged (False beyond the swath edge).

    """

    cloud: np.ndarray
    shadow: np.ndarray
    cirrus: np.ndarray
    valid: np.ndarray


def simulate_sky(
    shape: tuple[int, int],
    rng: np.random.Generator,
    cloud_fraction: float,
    cirrus_fraction: float,
    swath_edge: float = 0.0,
) -> Sky:
    """Draw clouds with soft edges, their shadows (cast north-west) and streaks of cirrus.

    Args:
        shape: (rows, cols) of the 10 m grid (even numbers).
        rng: the random generator (consumed).
        cloud_fraction: fraction of pixels touched by cloud, 0..1.
        cirrus_fraction: fraction of pixels under cirrus, 0..1.
        swath_edge: fraction of the frame cut off in a corner (no data), 0..0.5.

    """
    h, w = shape
    dy, dx = (int(v) for v in rng.integers(12, 40, 2))  # shadow offset: sun in the south-east
    big = (h + dy, w + dx)
    field = smooth_field(rng, big, 30) + 0.5 * smooth_field(rng, big, 7)
    if cloud_fraction > 0:
        threshold = np.quantile(field, 1.0 - cloud_fraction)
        opacity = np.clip((field - threshold) / 0.8, 0.0, 1.0)
    else:
        opacity = np.zeros(big, dtype=np.float32)
    cloud = opacity[:h, :w]
    shadow = opacity[dy:, dx:] * (1.0 - cloud)
    streaks = smooth_field(rng, shape, (rng.uniform(8, 15), rng.uniform(40, 80)))
    if cirrus_fraction > 0:
        threshold = np.quantile(streaks, 1.0 - cirrus_fraction)
        cirrus = np.clip((streaks - threshold) / 1.0, 0.0, 0.7)
    else:
        cirrus = np.zeros(shape, dtype=np.float32)
    valid = np.ones((h // 2, w // 2), dtype=bool)
    if swath_edge > 0:
        rows, cols = _coords(valid.shape)
        y, x = rows / valid.shape[0], cols / valid.shape[1]
        if rng.random() < 0.5:
            y = 1.0 - y
        if rng.random() < 0.5:
            x = 1.0 - x
        valid = x + y > math.sqrt(2 * swath_edge)
    valid = valid.repeat(2, axis=0).repeat(2, axis=1)
    return Sky(
        cloud.astype(np.float32), shadow.astype(np.float32), cirrus.astype(np.float32), valid
    )


def observe(
    surface: np.ndarray, sky: Sky, codes: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Compute one date's L2A reflectance: the surface seen through that date's sky.

    Per date: a gain per band and per class (phenology, illumination), a haze that
    brightens short wavelengths, then cirrus (a thin, bright veil), cloud shadow (darker)
    and cloud (bright, opaque), and sensor noise.

    Args:
        surface: (10, rows, cols) surface reflectance from :func:`surface_reflectance`.
        sky: the date's sky.
        codes: WorldCover codes of the scene (for the per-class variation).
        rng: the random generator (consumed).

    Returns:
        float32 (10, rows, cols) reflectance; 0 outside the swath.

    """
    nb = surface.shape[0]
    band_gain = rng.normal(1.0, 0.02, nb).astype(np.float32)[:, None, None]
    haze = rng.uniform(0.0, 1.0) * np.asarray(_HAZE, dtype=np.float32)[:, None, None]
    class_gain = rng.normal(1.0, 0.03, 256).astype(np.float32)[codes]
    rho = surface * band_gain * class_gain + haze
    cirrus = np.asarray(_CIRRUS, dtype=np.float32)[:, None, None]
    rho = rho * (1.0 - 0.3 * sky.cirrus) + sky.cirrus * cirrus
    rho *= 1.0 - 0.7 * sky.shadow
    puff = 1.0 + 0.1 * smooth_field(rng, codes.shape, 5)
    cloud = np.asarray(_CLOUD, dtype=np.float32)[:, None, None] * puff
    rho = rho * (1.0 - sky.cloud) + sky.cloud * cloud
    rho += rng.normal(0.0, 0.002, rho.shape).astype(np.float32)
    rho = np.clip(rho, 0.0, None)
    rho[:, ~sky.valid] = 0.0
    return rho


def scene_classification(codes: np.ndarray, sky: Sky) -> np.ndarray:
    """Derive the Sentinel-2 Scene Classification Layer (SCL) at 20 m for one date.

    Clear pixels get 4 (vegetation), 5 (not vegetated), 6 (water) from the land cover;
    thin cloud edges 7 (unclassified, as Sen2Cor often leaves them), cirrus 10, cloud
    shadow 3, cloud 8 (medium probability) or 9 (high), and 0 outside the swath.

    Args:
        codes: WorldCover codes on the 10 m grid.
        sky: the date's sky on the 10 m grid.

    Returns:
        uint8 (rows / 2, cols / 2).

    """
    clear = np.full(256, 7, dtype=np.uint8)
    for code, value in _SCL_CLEAR.items():
        clear[code] = value
    scl = clear[codes[::2, ::2]]
    cloud, shadow, cirrus = (_block_mean(a) for a in (sky.cloud, sky.shadow, sky.cirrus))
    scl[cloud > 0.05] = 7
    scl[cirrus > 0.25] = 10
    scl[shadow > 0.35] = 3
    scl[cloud > 0.3] = 8
    scl[cloud > 0.65] = 9
    scl[~sky.valid[::2, ::2]] = 0
    return scl


def cloud_cover(scl: np.ndarray) -> float:
    """Percentage of imaged pixels that SCL marks as cloud or cirrus (8, 9, 10)."""
    imaged = scl != 0
    if not imaged.any():
        return 100.0
    return round(100.0 * float(np.isin(scl[imaged], (8, 9, 10)).mean()), 2)


def _block_mean(array: np.ndarray) -> np.ndarray:
    """Mean over 2 x 2 blocks of the last two axes (10 m -> 20 m)."""
    h, w = array.shape[-2:]
    blocks = array.reshape(*array.shape[:-2], h // 2, 2, w // 2, 2)
    return blocks.mean(axis=(-3, -1), dtype=np.float32)


def to_dn(reflectance: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Reflectance -> uint16 DN = 10000 * reflectance + 1000 (baseline >= 04.00), 0 if not valid."""
    dn = np.rint(np.clip(reflectance, 0.0, 6.4) * 10000.0) + DN_OFFSET
    return np.where(valid, dn, 0).astype(np.uint16)


# --------------------------------------------------------------------------- an area


@dataclass(frozen=True)
class Acquisition:
    """One synthetic Sentinel-2 L2A acquisition of an area.

    Attributes:
        datetime: acquisition time (UTC).
        bands: band name -> array at the band's native resolution: uint16 DN for
            reflectance bands (0 = nodata), uint8 for SCL.
        cloud_cover: percentage of SCL 8, 9, 10 among imaged pixels.

    """

    datetime: dt.datetime
    bands: dict[str, np.ndarray]
    cloud_cover: float


@dataclass(frozen=True)
class DemoArea:
    """Everything the demo bucket holds about one area.

    Attributes:
        name: area name.
        bbox: (west, south, east, north) in degrees.
        landscape: the landscape kind.
        grid: the 10 m UTM grid of the imagery (the area grid plus :data:`MARGIN_M`).
        codes: uint8 WorldCover codes on ``grid``.
        acquisitions: the dated observations, in time order.

    """

    name: str
    bbox: BBox
    landscape: str
    grid: Grid
    codes: np.ndarray
    acquisitions: tuple[Acquisition, ...]


def imagery_grid(bbox: BBox) -> Grid:
    """Return the 10 m UTM grid of an area's imagery: its area grid plus :data:`MARGIN_M`."""
    core = area_grid(bbox, resolution=10)
    t = core.transform
    pad = MARGIN_M // 10
    return Grid(
        crs=core.crs,
        transform=Affine(t.a, 0.0, t.c - MARGIN_M, 0.0, t.e, t.f + MARGIN_M),
        width=core.width + 2 * pad,
        height=core.height + 2 * pad,
    )


def acquisition_dates(
    start: dt.date, end: dt.date, n_dates: int, rng: np.random.Generator
) -> list[dt.date]:
    """``n_dates`` distinct dates in [start, end], on a 5-day revisit, spread evenly.

    Raises:
        ConfigError: when the range is inverted or holds fewer than ``n_dates`` days.

    """
    days = (end - start).days + 1
    if n_dates < 1 or days < n_dates:
        raise ConfigError(
            f"demo: cannot place n_dates={n_dates} distinct dates between {start} and {end}; "
            "widen `imagery.dates` (start <= end) or lower `demo.n_dates` (>= 1)."
        )
    candidates = np.arange(int(rng.integers(0, min(5, days))), days, 5)
    if len(candidates) < n_dates:
        candidates = np.arange(days)
    picks = np.rint(np.linspace(0, len(candidates) - 1, n_dates)).astype(int)
    return [start + dt.timedelta(days=int(candidates[i])) for i in picks]


def _area_seed(seed: int, name: str) -> np.random.SeedSequence:
    """Return an area's seed sequence: the global seed and a stable hash of its name."""
    return np.random.SeedSequence([int(seed), zlib.crc32(name.encode("utf-8"))])


def synthesize_area(
    name: str,
    bbox: BBox,
    landscape: Landscape,
    dates: tuple[dt.date, dt.date],
    n_dates: int,
    seed: int,
) -> DemoArea:
    """Synthesise an area's land cover and its Sentinel-2 acquisitions (no I/O).

    The result depends only on the arguments: the same seed gives identical arrays,
    and an area's land cover does not depend on ``dates`` or ``n_dates``.

    Args:
        name: area name (part of the seed).
        bbox: (west, south, east, north) in degrees.
        landscape: the landscape kind.
        dates: (start, end) of the acquisitions, inclusive.
        n_dates: number of acquisitions; one of them is nearly cloud-free.
        seed: the global seed.

    """
    grid = imagery_grid(bbox)
    land_seq, radio_seq, date_seq, sky_seq = _area_seed(seed, name).spawn(4)
    land_rng = np.random.default_rng(land_seq)
    scene = synthesize_landscape(landscape, grid.shape, land_rng)
    surface = surface_reflectance(
        scene, area_radiometry(np.random.default_rng(radio_seq)), land_rng
    )

    date_rng = np.random.default_rng(date_seq)
    days = acquisition_dates(dates[0], dates[1], n_dates, date_rng)
    clear_date = int(date_rng.integers(n_dates))
    lon = (bbox[0] + bbox[2]) / 2
    overpass = dt.timedelta(hours=10.5 - lon / 15.0)  # 10:30 mean local solar time
    acquisitions = []
    for index, (day, sky_rng_seq) in enumerate(zip(days, sky_seq.spawn(n_dates), strict=True)):
        rng = np.random.default_rng(sky_rng_seq)
        clear = index == clear_date
        sky = simulate_sky(
            grid.shape,
            rng,
            cloud_fraction=rng.uniform(0.0, 0.03) if clear else rng.uniform(0.1, 0.6),
            cirrus_fraction=0.0 if clear else rng.uniform(0.0, 0.15),
            swath_edge=0.0 if clear or rng.random() < 0.6 else rng.uniform(0.05, 0.2),
        )
        rho = observe(surface, sky, scene.codes, rng)
        scl = scene_classification(scene.codes, sky)
        bands: dict[str, np.ndarray] = {}
        for b, band in enumerate(SPECTRAL_BANDS):
            if BAND_RESOLUTION[band] == 10:
                bands[band] = to_dn(rho[b], sky.valid)
            else:
                bands[band] = to_dn(_block_mean(rho[b]), sky.valid[::2, ::2])
        bands["SCL"] = scl
        when = dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc) + overpass
        when += dt.timedelta(seconds=float(rng.uniform(0, 60)))
        acquisitions.append(Acquisition(when.replace(microsecond=0), bands, cloud_cover(scl)))
    return DemoArea(name, bbox, landscape, grid, scene.codes, tuple(acquisitions))


# --------------------------------------------------------------------------- names


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


# --------------------------------------------------------------------------- labels


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


def _global_transform(row: int, col: int) -> Affine:
    """Transform of a window whose top-left pixel is (row, col) on the global grid."""
    per_deg = round(1 / WORLDCOVER_PIXEL_DEG)
    return Affine(1 / per_deg, 0.0, col / per_deg - 180, 0.0, -1 / per_deg, 90 - row / per_deg)


# --------------------------------------------------------------------------- writers


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
    profile = {
        "driver": "GTiff",
        "width": array.shape[1],
        "height": array.shape[0],
        "count": 1,
        "dtype": array.dtype.name,
        "crs": crs,
        "transform": transform,
        "nodata": 0,
    }
    with MemoryFile() as memory, memory.open(**profile) as source:
        source.write(array, 1)
        source.set_band_description(1, description)
        with atomic_path(path) as tmp:
            rasterio.shutil.copy(
                source,
                tmp,
                driver="COG",
                compress="deflate",
                predictor=2,
                blocksize=256,
                overview_resampling=resampling,
                overview_count=2,
            )


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


def _write_worldcover(root: Path, windows: Sequence[LabelWindow], seed: int) -> list[str]:
    """Write one WorldCover COG per 3 degree tile touched by the windows; return tile names.

    Each file covers the union of the windows' parts inside its tile, on the tile's own
    pixel grid; pixels outside the windows are 0 (nodata) and take no space (sparse).
    """
    per_deg = round(1 / WORLDCOVER_PIXEL_DEG)
    tile_px = per_deg * WORLDCOVER_TILE_DEG
    pieces: dict[str, list[tuple[int, int, np.ndarray]]] = {}
    origins: dict[str, tuple[int, int, float, float]] = {}
    for window in windows:
        h, w = window.codes.shape
        west, east = window.col / per_deg - 180, (window.col + w) / per_deg - 180
        south, north = 90 - (window.row + h) / per_deg, 90 - window.row / per_deg
        for tile, (tw, _, _, tn) in worldcover_tiles((west, south, east, north)):
            trow, tcol = round((90 - tn) * per_deg), round((tw + 180) * per_deg)
            r0, r1 = max(window.row, trow), min(window.row + h, trow + tile_px)
            c0, c1 = max(window.col, tcol), min(window.col + w, tcol + tile_px)
            if r0 >= r1 or c0 >= c1:
                continue
            part = window.codes[
                r0 - window.row : r1 - window.row, c0 - window.col : c1 - window.col
            ]
            pieces.setdefault(tile, []).append((r0, c0, part))
            origins[tile] = (trow, tcol, tw, tn)

    for tile, parts in sorted(pieces.items()):
        trow, tcol, tw, tn = origins[tile]
        r0 = min(r for r, _, _ in parts)
        c0 = min(c for _, c, _ in parts)
        r1 = max(r + p.shape[0] for r, _, p in parts)
        c1 = max(c + p.shape[1] for _, c, p in parts)
        # pixel edges at the tile's corner + k / 12000 degrees
        file_transform = Affine(
            1 / per_deg,
            0.0,
            tw + (c0 - tcol) / per_deg,
            0.0,
            -1 / per_deg,
            tn - (r0 - trow) / per_deg,
        )
        sparse = root / f".{tile}.sparse.tif"
        with rasterio.open(
            sparse,
            "w+",
            driver="GTiff",
            width=c1 - c0,
            height=r1 - r0,
            count=1,
            dtype="uint8",
            crs="EPSG:4326",
            transform=file_transform,
            nodata=0,
            tiled=True,
            blockxsize=1024,
            blockysize=1024,
            compress="deflate",
            sparse_ok=True,
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
        levels = max(1, math.ceil(math.log2(max(r1 - r0, c1 - c0) / 256)))  # down to ~256 px
        # a small block cache: the default (5 % of RAM) fills up with the empty blocks
        with (
            atomic_path(worldcover_path(root, "v200", tile)) as tmp,
            rasterio.Env(GDAL_CACHEMAX=64),
        ):
            rasterio.shutil.copy(
                sparse,
                tmp,
                driver="COG",
                compress="deflate",
                blocksize=1024,
                overview_resampling="nearest",
                overview_count=levels,
                sparse_ok=True,
            )
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
    n_dates: int = 4,
    seed: int = 42,
) -> Path:
    """Write the demo bucket: WorldCover tiles, Sentinel-2 COGs and a STAC catalog.

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
        windows = []
        taken: set[str] = set()
        for name, bbox, landscape in checked:
            area = synthesize_area(name, bbox, landscape, (start, end), n_dates, seed)
            items += _write_sentinel2(staging, area, taken)
            windows.append(worldcover_labels(area))
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
        _write_worldcover_grid(staging, tiles)
        _write_stac(staging, items, seed)
        log.info("demo WorldCover tiles: %s", tiles)
        _publish(staging, root)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    log.info("demo bucket written to %s", root)
    return root
