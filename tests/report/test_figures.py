"""Figures: each function writes one non-empty PNG of the requested size."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine
from PIL import Image

from landcover.errors import DataError
from landcover.report import figures

CLASSES = [
    {"name": "tree", "codes": [10], "colour": "#006400"},
    {"name": "water", "codes": [80], "colour": "#0064C8"},
    {"name": "built_up", "codes": [50], "colour": "#FA0000"},
]
TRANSFORM = Affine(10, 0, 300000, 0, -10, 1600000)


def raster(path, data, nodata, descriptions=None, tags=None):
    data = np.asarray(data)
    if data.ndim == 2:
        data = data[None]
    profile = {
        "driver": "GTiff",
        "dtype": str(data.dtype),
        "count": data.shape[0],
        "height": data.shape[1],
        "width": data.shape[2],
        "crs": "EPSG:32628",
        "transform": TRANSFORM,
        "nodata": nodata,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        for i, name in enumerate(descriptions or [], 1):
            dst.set_band_description(i, name)
        dst.update_tags(**(tags or {}))
    return path


def png_size(path):
    assert path.stat().st_size > 1000
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


@pytest.fixture
def area(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 0.3, (4, 120, 90)).astype(np.float32)
    image[:, :10, :10] = np.nan
    labels = rng.integers(0, 3, (120, 90)).astype(np.uint8)
    labels[:5] = 255
    codes = np.array([10, 80, 50], np.uint8)[labels % 3]
    codes[:10, :10] = 0
    return (
        raster(tmp_path / "image.tif", image, np.nan, ["B02", "B03", "B04", "B08"]),
        raster(tmp_path / "labels.tif", labels, 255),
        raster(tmp_path / "map.tif", codes, 0, tags={"values": "codes"}),
    )


def test_stretch_maps_percentiles_to_0_1_and_nan_to_transparent():
    bands = np.stack([np.linspace(0, 1, 101).reshape(1, 101)] * 3).astype(np.float32)
    bands[:, 0, 50] = np.nan
    rgba = figures.stretch(bands)
    assert rgba.shape == (1, 101, 4)
    assert rgba[0, 0, 0] == 0 and rgba[0, 100, 0] == 1
    assert rgba[0, 50, 3] == 0 and rgba[0, 49, 3] == 1


def test_decimation_bounds_the_read():
    assert figures.decimation((20000, 10000), 1000) == (1000, 500)
    assert figures.decimation((100, 50), 1000) == (100, 50)


def test_plot_area(tmp_path, area):
    out = tmp_path / "figs" / "area.png"
    figures.plot_area(*area, out, classes=CLASSES, title="area · exp", max_size=64, size=(9, 4))
    assert png_size(out) == (900, 400)
    figures.plot_area(*area, out, classes=CLASSES)  # height follows the scene's aspect
    width, height = png_size(out)
    assert width == 1500 and 400 <= height <= 1200


def test_plot_area_of_an_area_without_labels_has_no_reference_panel(tmp_path, area, monkeypatch):
    drawn, save = [], figures._save

    def keep(fig, *args):  # the figure, to look at its panels
        drawn.append(fig)
        save(fig, *args)

    monkeypatch.setattr(figures, "_save", keep)
    image, _, prediction = area
    out = tmp_path / "area.png"
    figures.plot_area(image, None, prediction, out, classes=CLASSES, title="x", size=(9, 4))
    assert png_size(out) == (900, 400)
    (fig,) = drawn
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["True colour (B04, B03, B02)", "Prediction"]
    assert "no labels" in fig._suptitle.get_text()


def test_plot_area_shows_the_clear_looks_in_a_fourth_panel(tmp_path, area):
    count = np.tile(np.arange(4, dtype=np.uint8), (40, 10))
    clear = raster(tmp_path / "clear_count.tif", count, None)
    out = tmp_path / "area.png"
    figures.plot_area(*area, out, classes=CLASSES, clear_count=clear, size=(12, 4))
    assert png_size(out) == (1200, 400)
    assert figures.read_count(clear).tolist() == count.tolist()


def test_an_image_without_true_colour_bands_is_shown_by_its_own(tmp_path, area):
    assert figures.view_bands(["B02", "B03", "B04", "B08"]) == [3, 2, 1]
    assert figures.view_bands(["B08", "B11", "B12"]) == [1, 2, 3]
    assert figures.view_bands(["gray"]) == [1, 1, 1]
    gray = raster(
        tmp_path / "gray.tif", np.arange(64, dtype=np.float32).reshape(1, 8, 8), np.nan, ["gray"]
    )
    view, title = figures.read_true_colour(gray)
    assert title == "Image (gray)" and view.shape == (3, 8, 8)
    np.testing.assert_array_equal(view[0], view[2])
    assert figures.read_true_colour(area[0])[1] == "True colour (B04, B03, B02)"
    figures.plot_area(gray, *area[1:], tmp_path / "x.png", classes=CLASSES, size=(9, 4))
    assert png_size(tmp_path / "x.png") == (900, 400)


def test_plot_iou(tmp_path):
    table = tmp_path / "per_class_iou.csv"
    pd.DataFrame(
        {"class": ["tree", "water", "built_up"], "iou": [0.7, 0.0, np.nan], "support": [9, 3, 0]}
    ).to_csv(table, index=False, na_rep="NaN")
    out = tmp_path / "iou.png"
    figures.plot_iou(table, out, classes=CLASSES, size=(6, 4), dpi=50)
    assert png_size(out) == (300, 200)


def test_plot_learning_curves(tmp_path):
    history = tmp_path / "history.csv"
    pd.DataFrame(
        {
            "epoch": [1, 2, 3],
            "train_loss": [1.0, 0.7, 0.5],
            "val_loss": [1.1, 0.8, 0.9],
            "val_miou": [0.2, 0.4, 0.35],
            "lr": [1e-3, 1e-3, 1e-4],
        }
    ).to_csv(history, index=False)
    out = tmp_path / "curves.png"
    figures.plot_learning_curves(history, out)
    assert png_size(out) == (1100, 450)


def test_learning_curves_need_the_columns(tmp_path):
    history = tmp_path / "history.csv"
    pd.DataFrame({"epoch": [1], "loss": [1.0]}).to_csv(history, index=False)
    with pytest.raises(DataError, match="lacks column"):
        figures.plot_learning_curves(history, tmp_path / "x.png")


def test_plot_confusion(tmp_path):
    names = ["tree", "water", "built_up"]
    confusion = tmp_path / "confusion.csv"
    pd.DataFrame(
        [[5, 1, 0], [2, 3, 0], [0, 0, 0]], index=pd.Index(names, name="reference"), columns=names
    ).to_csv(confusion)
    norm = figures.normalise_rows(pd.read_csv(confusion, index_col=0).to_numpy())
    np.testing.assert_allclose(norm[0], [5 / 6, 1 / 6, 0])
    assert np.isnan(norm[2]).all()
    out = tmp_path / "confusion.png"
    figures.plot_confusion(confusion, out)
    assert png_size(out) == (800, 700)


def test_plot_leaderboard(tmp_path):
    table = tmp_path / "leaderboard.csv"
    pd.DataFrame(
        {"experiment": ["a", "b"], "device": ["cpu", "cuda"], "miou": [0.5, np.nan]}
    ).to_csv(table, index=False)
    out = tmp_path / "leaderboard.png"
    figures.plot_leaderboard(table, out)
    assert png_size(out) == (800, 450)


def test_read_classes_maps_codes_back_to_indices(tmp_path, area):
    from landcover.classes import ClassMap

    class_map = ClassMap.from_config(CLASSES)
    indices = figures.read_classes(area[2], class_map, max_size=1000)
    with rasterio.open(area[1]) as ds:
        labels = ds.read(1)
    assert (indices[:10, :10] == 255).all()
    np.testing.assert_array_equal(indices[10:], labels[10:] % 3)
    assert json.dumps(indices.shape) == "[120, 90]"
