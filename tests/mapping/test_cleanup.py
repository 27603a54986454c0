"""Map clean-up: the minimum mapping unit (sieve) on hand-made maps."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from affine import Affine
from rio_cogeo.cogeo import cog_validate

from landcover.errors import ConfigError
from landcover.mapping.cleanup import sieve_map, sieve_values
from landcover.mapping.legend import legend_paths, write_legend


def hand_made() -> np.ndarray:
    values = np.full((8, 8), 10, np.uint8)
    values[2, 2] = 80  # a speck of one pixel
    values[5:8, 5:8] = 80  # a region of 9 pixels
    values[0, 6:8] = 0  # nodata, 2 pixels
    return values


def test_specks_below_the_unit_take_their_neighbours_class():
    cleaned = sieve_values(hand_made(), nodata=0, size=4)
    assert cleaned[2, 2] == 10


def test_regions_at_least_the_unit_are_kept():
    cleaned = sieve_values(hand_made(), nodata=0, size=4)
    assert (cleaned[5:8, 5:8] == 80).all()
    assert (sieve_values(hand_made(), nodata=0, size=10)[5:8, 5:8] == 10).all()


def test_nodata_is_untouched_and_never_grows():
    values = hand_made()
    cleaned = sieve_values(values, nodata=0, size=4)  # the nodata region is 2 px
    assert (cleaned[0, 6:8] == 0).all() and (cleaned[values != 0] != 0).all()


def test_a_unit_of_one_pixel_changes_nothing():
    np.testing.assert_array_equal(sieve_values(hand_made(), nodata=0, size=1), hand_made())


def test_sieve_map_keeps_the_maps_grid_colours_and_tags(tmp_path):
    path, out = tmp_path / "area.tif", tmp_path / "area_mmu.tif"
    profile = {
        "driver": "GTiff", "width": 8, "height": 8, "count": 1, "dtype": "uint8",
        "crs": "EPSG:32628", "transform": Affine(10, 0, 300000, 0, -10, 1600000), "nodata": 0,
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write_colormap(1, {10: (0, 100, 0, 255), 80: (0, 100, 200, 255)})
        dst.write(hand_made(), 1)
        dst.set_band_description(1, "class")
        dst.update_tags(experiment="unet")
    write_legend(path, [10, 80], ["tree", "water"], [(0, 100, 0, 255), (0, 100, 200, 255)])
    sieve_map(path, out, size=4)
    # the class names for QGIS and GDAL follow the cleaned map
    for raw, cleaned in zip(legend_paths(path), legend_paths(out), strict=True):
        assert cleaned.read_text() == raw.read_text() and "water" in cleaned.read_text()
    assert cog_validate(str(out), quiet=True)[0]
    with rasterio.open(out) as ds:
        assert (ds.crs, ds.transform, ds.nodata) == (profile["crs"], profile["transform"], 0)
        assert ds.colormap(1)[80] == (0, 100, 200, 255) and ds.descriptions == ("class",)
        assert ds.tags()["experiment"] == "unet" and ds.tags()["min_mapping_unit"] == "4"
        np.testing.assert_array_equal(ds.read(1), sieve_values(hand_made(), 0, 4))


def test_a_unit_below_one_pixel_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"predict\.min_mapping_unit"):
        sieve_map(tmp_path / "a.tif", tmp_path / "b.tif", size=0)
    assert not (tmp_path / "b.tif").exists()
