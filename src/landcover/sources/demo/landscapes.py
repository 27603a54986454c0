"""Landscapes of the demo: WorldCover codes drawn as spatially coherent shapes.

Each area's land cover is drawn once, as ESA WorldCover codes on the area's 10 m UTM grid
(plus a margin), by a landscape generator (``lake``, ``city``, ``forest``, ``delta``)
made of fields, canals, rivers, coastlines and street blocks. Pure: a seeded generator
in, arrays out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage

from landcover.errors import ConfigError

Landscape = Literal["lake", "city", "forest", "delta"]
"""The kinds of landscape the generator draws."""


LANDSCAPES: tuple[str, ...] = ("lake", "city", "forest", "delta")
"""Accepted values of an area's ``landscape``."""


# ESA WorldCover v200 codes.
TREE, SHRUB, GRASS, CROP, BUILT, BARE = 10, 20, 30, 40, 50, 60


SNOW, WATER, WETLAND, MANGROVE, MOSS = 70, 80, 90, 95, 100


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

    # reed beds (Typha) fringe Sahel lakes in belts from a few metres to over 100 m wide
    belt = np.clip(5.0 + 4.0 * smooth_field(rng, shape, 30), 1.0, 12.0)
    reeds = (shore > 0) & (shore <= belt) & (smooth_field(rng, shape, 20) > -0.3)
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
