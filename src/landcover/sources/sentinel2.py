"""Sentinel-2 L2A conventions shared by the demo bucket and the imagery readers."""

from __future__ import annotations

ASSET_KEYS: dict[str, str] = {
    "B02": "blue",
    "B03": "green",
    "B04": "red",
    "B08": "nir",
    "B05": "rededge1",
    "B06": "rededge2",
    "B07": "rededge3",
    "B8A": "nir08",
    "B11": "swir16",
    "B12": "swir22",
    "SCL": "scl",
}
"""Band name -> asset key of an Earth Search ``sentinel-2-l2a`` item."""

SCL_MASK: tuple[int, ...] = (0, 1, 3, 8, 9, 10, 11)
"""Scene Classification (SCL) values that mark a pixel unusable: 0 nodata, 1 saturated or
defective, 3 cloud shadow, 8 cloud medium probability, 9 cloud high probability,
10 thin cirrus, 11 snow or ice."""

BAND_RESOLUTION: dict[str, int] = {
    "B02": 10,
    "B03": 10,
    "B04": 10,
    "B08": 10,
    "B05": 20,
    "B06": 20,
    "B07": 20,
    "B8A": 20,
    "B11": 20,
    "B12": 20,
    "SCL": 20,
}
"""Band name -> native pixel size in metres of its L2A COG."""
