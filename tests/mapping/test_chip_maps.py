"""One map per chip: the mosaic's map cut back into chips, on the chips' own footprints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from landcover.errors import DataError
from landcover.mapping.chips import split_map
from landcover.sources import acquire_imagery

SIZE = 8


def write_chip(path: Path, value: int, crs: str | None, transform: Affine | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    georef = {"crs": crs, "transform": transform} if crs else {}
    with rasterio.open(
        path, "w", driver="GTiff", height=SIZE, width=SIZE, count=2, dtype="uint16", **georef
    ) as dst:
        dst.write(np.full((2, SIZE, SIZE), value, np.uint16))


def mosaic_and_map(tmp_path: Path, georeferenced: bool) -> tuple[Path, Path, dict]:
    """Three chips (ids a, b, c) laid side by side, and a map whose pixels are 10 + chip."""
    footprints = {
        "a": ("EPSG:32633", Affine(10, 0, 300000, 0, -10, 5800000)),
        "b": ("EPSG:32633", Affine(10, 0, 300500, 0, -10, 5800000)),
        "c": ("EPSG:4326", Affine(0.001, 0, 12.5, 0, -0.001, 52.5)),
    }
    for i, (chip, (crs, transform)) in enumerate(footprints.items()):
        write_chip(
            tmp_path / "chips" / f"{chip}.tif",
            i,
            *((crs, transform) if georeferenced else (None, None)),
        )
    image = tmp_path / "image.tif"
    acquire_imagery(
        "train", None, "chips", window="all", root=f"{tmp_path}/chips/{{id}}.tif",
        bands=["b1", "b2"], scale=1.0, offset=0.0, out=image,
    )  # fmt: skip
    with rasterio.open(image) as src:
        profile = {"driver": "GTiff", "height": src.height, "width": src.width, "count": 1}
        values = 10 + src.read(1).astype(np.uint8)  # the chip's index
    values[:, -SIZE:] = 0  # nodata over the second column: chip b and the empty cell
    map_path = tmp_path / "map.tif"
    with rasterio.open(map_path, "w", **profile, dtype="uint8", nodata=0) as dst:
        dst.write(values, 1)
        dst.write_colormap(1, {10: (255, 0, 0, 255), 11: (0, 255, 0, 255)})
        dst.update_tags(classes='["x", "y"]')
    return image, map_path, footprints


def test_georeferenced_chips_keep_their_footprints(tmp_path):
    image, map_path, footprints = mosaic_and_map(tmp_path, georeferenced=True)
    out = tmp_path / "maps" / "train_chips"
    out.parent.mkdir()
    assert split_map(map_path, image, out) == 3
    assert sorted(p.name for p in out.iterdir()) == ["a.tif", "b.tif", "c.tif"]
    for i, (chip, (crs, transform)) in enumerate(footprints.items()):
        with rasterio.open(out / f"{chip}.tif") as ds:
            assert ds.crs == rasterio.crs.CRS.from_user_input(crs)
            assert ds.transform.almost_equals(transform)
            assert (ds.height, ds.width) == (SIZE, SIZE) and ds.nodata == 0
            expected = 0 if chip == "b" else 10 + i  # chip b's cell was blanked above
            assert (ds.read(1) == expected).all()
            assert ds.colormap(1)[10] == (255, 0, 0, 255)
            assert ds.tags()["chip"] == chip and ds.tags()["classes"] == '["x", "y"]'
            assert ds.tags()["chip_file"].endswith(f"{chip}.tif")
    assert [p.name for p in out.parent.iterdir()] == ["train_chips"]  # no temporary left


def test_chips_without_crs_stay_on_their_pixel_grid(tmp_path):
    image, map_path, _ = mosaic_and_map(tmp_path, georeferenced=False)
    out = tmp_path / "train_chips"
    split_map(map_path, image, out)
    with rasterio.open(out / "c.tif") as ds:
        assert ds.crs is None and ds.transform == Affine.identity()
        assert (ds.read(1) == 12).all()


def test_a_map_not_on_the_mosaic_is_refused(tmp_path):
    image, _, _ = mosaic_and_map(tmp_path, georeferenced=False)
    wrong = tmp_path / "wrong.tif"
    with rasterio.open(
        wrong, "w", driver="GTiff", height=4, width=4, count=1, dtype="uint8"
    ) as dst:
        dst.write(np.zeros((1, 4, 4), np.uint8))
    with pytest.raises(DataError, match=r"is 4 x 4 px but its image .* rerun `predict_area`"):
        split_map(wrong, image, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(DataError, match="not a mosaic of chips"):
        split_map(wrong, wrong, tmp_path / "out")
