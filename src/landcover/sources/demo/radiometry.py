"""Radiometry of the demo: land cover to Sentinel-2 L2A observations, clouds and SCL.

Per-class surface-reflectance signatures with within-class variability (smooth random
fields, per-field vigour), texture, sensor noise, a slight blur, a radiometric shift per
area and a variation per date; then clouds, cloud shadows and cirrus, marked in the
Scene Classification Layer (SCL). Pure: a seeded generator in, arrays out.
"""

from __future__ import annotations

import datetime as dt
import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from affine import Affine
from scipy import ndimage

from landcover.errors import ConfigError
from landcover.grid import (
    BBox,
    Grid,
    area_grid,
)
from landcover.sources.demo.landscapes import (
    BARE,
    BUILT,
    CROP,
    GRASS,
    MANGROVE,
    MOSS,
    SHRUB,
    SNOW,
    TREE,
    WATER,
    WETLAND,
    Landscape,
    Scene,
    _coords,
    smooth_field,
    synthesize_landscape,
)
from landcover.sources.sentinel2 import BAND_RESOLUTION

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


MARGIN_M = 240
"""Imagery margin around an area's grid, metres (a multiple of 60)."""


DN_OFFSET = 1000
"""Processing baseline >= 04.00: DN = 10000 * reflectance + 1000."""


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
