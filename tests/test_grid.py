"""Grids: UTM zones, the WorldCover tile grid, snapped area grids."""

from __future__ import annotations

import pytest

from landcover.errors import ConfigError
from landcover.grid import (
    area_grid,
    check_grid_crs,
    utm_crs,
    worldcover_tile_name,
    worldcover_tiles,
)


def test_utm_zone():
    assert utm_crs(-17.45, 14.7) == "EPSG:32628"
    assert utm_crs(7.4, 1.6) == "EPSG:32632"
    assert utm_crs(-70.0, -33.0) == "EPSG:32719"


def test_worldcover_tile_names_follow_the_south_west_corner():
    assert worldcover_tile_name(-18, 15) == "N15W018"
    assert worldcover_tile_name(6, 0) == "N00E006"
    assert worldcover_tile_name(-3, -3) == "S03W003"
    # Príncipe island (shared/realdata crop) lies in the official tile N00E006
    assert [t for t, _ in worldcover_tiles((7.29, 1.50, 7.53, 1.71))] == ["N00E006"]


def test_area_straddling_tiles():
    tiles = worldcover_tiles((-16.52, 14.98, -16.48, 15.02))
    assert [t for t, _ in tiles] == ["N12W018", "N15W018"]
    assert tiles[1][1] == (-18.0, 15.0, -15.0, 18.0)


def test_area_grid_is_snapped_and_covers_the_bbox():
    grid = area_grid((-15.90, 16.10, -15.86, 16.14), resolution=10)
    assert grid.crs == "EPSG:32628"
    left, bottom, right, top = grid.bounds
    assert (top - bottom) == pytest.approx(grid.height * 10)
    assert left % 60 == 0 and top % 60 == 0
    assert grid.width * 10 == pytest.approx(right - left)
    assert 420 < grid.width < 460 and 430 < grid.height < 470


@pytest.mark.parametrize(
    "crs", [None, "EPSG:32628", "EPSG:3035", "+proj=utm +zone=33 +datum=WGS84"]
)
def test_grid_crs_projected_in_metres_is_accepted(crs):
    assert check_grid_crs(crs) == crs


@pytest.mark.parametrize(
    ("crs", "message"),
    [
        ("EPSG:32A28", r"grid\.crs 'EPSG:32A28' is not a CRS that PROJ knows"),
        ("EPSG:4326", r"grid\.crs 'EPSG:4326' \(WGS 84\) is a geographic CRS \(axis units: degree"),
        ("EPSG:2263", r"is a projected CRS \(axis units: US survey foot\)"),
    ],
)
def test_grid_crs_names_the_key_and_an_example(crs, message):
    with pytest.raises(ConfigError, match=message) as info:
        check_grid_crs(crs)
    assert "e.g. EPSG:32628" in str(info.value)
