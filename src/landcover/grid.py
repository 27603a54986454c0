"""Pixel grids: the area's UTM grid, and the ESA WorldCover 3-degree tile grid."""

from __future__ import annotations

import math
from dataclasses import dataclass

from affine import Affine
from pyproj import CRS
from pyproj.exceptions import CRSError
from rasterio.warp import transform_bounds

from landcover.errors import ConfigError

BBox = tuple[float, float, float, float]
"""A lon/lat box: (west, south, east, north) in degrees."""

WORLDCOVER_TILE_DEG = 3
WORLDCOVER_PIXEL_DEG = 1 / 12000


@dataclass(frozen=True)
class Grid:
    """A north-up pixel grid: CRS, affine transform and shape.

    Attributes:
        crs: CRS as a string rasterio understands, e.g. ``"EPSG:32628"``.
        transform: affine transform of the top-left pixel corner.
        width: number of columns.
        height: number of rows.
    """

    crs: str
    transform: Affine
    width: int
    height: int

    @property
    def bounds(self) -> BBox:
        """(left, bottom, right, top) in the grid's CRS."""
        left, top = self.transform.c, self.transform.f
        right = left + self.width * self.transform.a
        bottom = top + self.height * self.transform.e
        return (left, bottom, right, top)

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width)."""
        return (self.height, self.width)

    @property
    def resolution(self) -> float:
        """Pixel width in CRS units."""
        return self.transform.a

    def profile(self) -> dict[str, object]:
        """The grid as rasterio profile keys."""
        return {
            "crs": self.crs,
            "transform": self.transform,
            "width": self.width,
            "height": self.height,
        }


def check_bbox(bbox: BBox, area: str) -> BBox:
    """Check a lon/lat bbox and return it as floats.

    Raises:
        ConfigError: naming the area when the box is inverted or out of range.
    """
    if len(bbox) != 4:
        raise ConfigError(
            f"Area '{area}': bbox must be [west, south, east, north] in degrees, got {bbox}."
        )
    west, south, east, north = (float(v) for v in bbox)
    if not (
        -180 <= west <= 180 and -180 <= east <= 180 and -90 <= south <= 90 and -90 <= north <= 90
    ):
        raise ConfigError(
            f"Area '{area}': bbox {list(bbox)} is out of range; longitudes must lie in "
            "[-180, 180] and latitudes in [-90, 90] (order: west, south, east, north)."
        )
    if west >= east or south >= north:
        raise ConfigError(
            f"Area '{area}': bbox {list(bbox)} is inverted or empty; give it as "
            "[west, south, east, north] with west < east and south < north."
        )
    return (west, south, east, north)


def utm_crs(lon: float, lat: float) -> str:
    """The WGS 84 / UTM zone CRS that holds a point (EPSG:326xx north, 327xx south)."""
    zone = min(int((lon + 180) // 6) + 1, 60)
    return f"EPSG:{(32600 if lat >= 0 else 32700) + zone}"


def check_grid_crs(crs: str | None) -> str | None:
    """Check ``grid.crs``: null (each area's UTM zone) or a projected CRS in metres.

    Raises:
        ConfigError: naming ``grid.crs``, the value and an example when it does not
            parse, or is geographic (degrees) or in other units (the grid's
            ``resolution`` is in metres).

    """
    if crs is None:
        return None
    example = "Use e.g. EPSG:32628 (WGS 84 / UTM zone 28N), or null for each area's UTM zone."
    try:
        parsed = CRS.from_user_input(crs)
    except CRSError as err:
        raise ConfigError(
            f"grid.crs '{crs}' is not a CRS that PROJ knows ({err}). {example}"
        ) from None
    units = sorted({axis.unit_name for axis in parsed.axis_info})
    if not parsed.is_projected or units != ["metre"]:
        kind = "a projected CRS" if parsed.is_projected else "a geographic CRS"
        raise ConfigError(
            f"grid.crs '{crs}' ({parsed.name}) is {kind} (axis units: {', '.join(units)}); "
            f"the grid needs a projected CRS in metres (grid.resolution is in metres). {example}"
        )
    return crs


def area_grid(
    bbox: BBox, resolution: float = 10.0, crs: str | None = None, snap: float = 60.0
) -> Grid:
    """The target grid of an area: its bbox in a projected CRS, snapped outwards.

    The origin is snapped to multiples of ``snap`` metres so that Sentinel-2's
    10, 20 and 60 m pixels (whose tile origins lie on multiples of 60 m) fall
    exactly on the grid.

    Args:
        bbox: (west, south, east, north) in degrees.
        resolution: pixel size in the CRS's units.
        crs: target CRS; default the UTM zone of the bbox centre.
        snap: the origin and extent are multiples of this (and of ``resolution``).
    """
    west, south, east, north = bbox
    crs = crs or utm_crs((west + east) / 2, (south + north) / 2)
    left, bottom, right, top = transform_bounds(
        "EPSG:4326", crs, west, south, east, north, densify_pts=21
    )
    step = (
        math.lcm(round(snap), round(resolution))
        if float(snap).is_integer() and float(resolution).is_integer()
        else resolution
    )
    left = math.floor(left / step) * step
    top = math.ceil(top / step) * step
    right = math.ceil(right / step) * step
    bottom = math.floor(bottom / step) * step
    width = round((right - left) / resolution)
    height = round((top - bottom) / resolution)
    return Grid(
        crs=crs,
        transform=Affine(resolution, 0, left, 0, -resolution, top),
        width=width,
        height=height,
    )


def worldcover_tile_name(lon: float, lat: float) -> str:
    """Name of the 3-degree WorldCover tile whose south-west corner is at (lon, lat).

    >>> worldcover_tile_name(-18, 15)
    'N15W018'
    """
    ns = "N" if lat >= 0 else "S"
    ew = "E" if lon >= 0 else "W"
    return f"{ns}{abs(int(lat)):02d}{ew}{abs(int(lon)):03d}"


def worldcover_tiles(bbox: BBox) -> list[tuple[str, BBox]]:
    """The WorldCover tiles a bbox touches, with each tile's own bounds.

    Tiles are 3 x 3 degrees, named by their south-west corner on the multiples
    of 3 degrees (``N15W018`` spans lon -18..-15, lat 15..18).
    """
    west, south, east, north = bbox
    step = WORLDCOVER_TILE_DEG
    tiles = []
    lat = math.floor(south / step) * step
    while lat < north:
        lon = math.floor(west / step) * step
        while lon < east:
            tiles.append(
                (
                    worldcover_tile_name(lon, lat),
                    (float(lon), float(lat), float(lon + step), float(lat + step)),
                )
            )
            lon += step
        lat += step
    return tiles
