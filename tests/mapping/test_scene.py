"""Mapping a scene (mapping.scene): the COG it writes, bands by name, checkpoints, errors.

Tiny nets stand in for a trained model where only the file matters; predict_area loads a
real (random) U-Net checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from rio_cogeo.cogeo import cog_validate

import landcover.io
import landcover.mapping.writer
from landcover import models
from landcover.classes import ClassMap
from landcover.config import validated
from landcover.errors import ConfigError, DataError
from landcover.mapping.scene import predict_area, predict_scene
from landcover.models.segmentation.data import normalise
from landcover.models.segmentation.nets import build_model, save_checkpoint
from landcover.models.segmentation.scorer import SegmentationScorer

BANDS = ["B02", "B03", "B04"]
CLASSES = [
    {"name": "tree", "codes": [10], "colour": "#006400"},
    {"name": "water", "codes": [80], "colour": "#0064C8"},
    {"name": "built_up", "codes": [50, 51], "colour": "#FA0000"},
]
CLASS_MAP = ClassMap.from_config(CLASSES)
NAMES = ["tree", "water", "built_up"]
MEAN = [0.1, 0.2, 0.3]
STD = [0.05, 0.1, 0.2]
TRANSFORM = Affine(10, 0, 300000, 0, -10, 1600020)


def pixel_net(seed: int = 0) -> torch.nn.Module:
    """1x1 convolutions: exactly translation-equivariant, no spatial context."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 1), torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 1)
    ).eval()


class ConstantNet(torch.nn.Module):
    """The same scores everywhere, whatever the input."""

    def __init__(self, scores: list[float]) -> None:
        super().__init__()
        self.scores = torch.tensor(scores)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        return self.scores.view(1, -1, 1, 1).expand(b, -1, h, w).clone()


def scorer(
    net: torch.nn.Module, *, classes: list[str] = NAMES, bands: list[str] = BANDS, **meta: object
) -> SegmentationScorer:
    """A little net as the mapping engine's scorer, on the CPU, for windows of any size."""
    wrapped = SegmentationScorer(
        net,
        {"mean": MEAN, "std": STD, "classes": classes, "bands": bands, **meta},
        torch.device("cpu"),
    )
    wrapped.window_multiple = 1  # the tiny nets take any window (smp's need 32)
    return wrapped


def checkpoint(path: Path, **meta: object) -> Path:
    """Write a checkpoint as training does: a random U-Net (resnet18) and its meta."""
    torch.manual_seed(0)
    net = build_model("unet", "resnet18", None, len(BANDS), len(NAMES))
    full = {
        "model": {"arch": "unet", "encoder": "resnet18", "encoder_weights": None},
        "bands": BANDS,
        "classes": NAMES,
        "in_channels": len(BANDS),
        "patch_size": 64,
        "mean": MEAN,
        "std": STD,
        "precision": "fp32",
        **meta,
    }
    save_checkpoint(path, {"state_dict": net.state_dict(), "meta": full})
    return path


@pytest.fixture
def torch_threads() -> Iterator[None]:
    """Restore torch's thread count after a test that maps an area (it sets it)."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def image(height: int, width: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 0.5, (3, height, width)).astype(np.float32)


def single_pass(model: torch.nn.Module, img: np.ndarray) -> np.ndarray:
    x = normalise(img, np.asarray(MEAN, np.float32), np.asarray(STD, np.float32))
    with torch.no_grad():
        return torch.softmax(model(torch.from_numpy(x)[None]), 1)[0].numpy()


def write_image(path: Path, img: np.ndarray, descriptions: list[str] = BANDS) -> Path:
    profile = {
        "driver": "GTiff",
        "dtype": "float32",
        "count": img.shape[0],
        "height": img.shape[1],
        "width": img.shape[2],
        "crs": "EPSG:32628",
        "transform": TRANSFORM,
        "nodata": np.nan,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(img)
        for i, name in enumerate(descriptions, 1):
            dst.set_band_description(i, name)
    return path


def test_window_must_be_a_multiple_of_the_scorers(tmp_path):
    smp_like = SegmentationScorer(
        pixel_net(),
        {"mean": MEAN, "std": STD, "classes": NAMES, "bands": BANDS},
        torch.device("cpu"),
    )
    src = write_image(tmp_path / "image.tif", image(20, 20))
    with pytest.raises(ConfigError, match="window=48 must be a multiple of 32"):
        predict_scene(
            smp_like,
            src,
            tmp_path / "map.tif",
            classes=CLASS_MAP,
            values="codes",
            window=48,
            overlap=16,
            batch_size=8,
        )
    assert not (tmp_path / "map.tif").exists()


# --------------------------------------------------------------------------- the COG


def test_predict_scene_writes_a_valid_cog_on_the_image_grid(tmp_path):
    img = image(150, 170)
    img[:, 10:20, 30:60] = np.nan  # nodata block
    img[0, 100, 100] = np.nan  # one band missing: nodata too
    src = write_image(tmp_path / "image.tif", img)
    out = tmp_path / "maps" / "area.tif"
    conf = tmp_path / "maps" / "area_confidence.tif"
    predict_scene(
        scorer(pixel_net()),
        src,
        out,
        classes=CLASS_MAP,
        values="codes",
        window=64,
        overlap=16,
        batch_size=4,
        confidence=conf,
        tags={"model": "m.pt", "experiment": "e1", "device": "cpu"},
    )
    is_valid, errors, _ = cog_validate(str(out), quiet=True)
    assert is_valid, errors
    with rasterio.open(out) as ds:
        assert ds.crs == rasterio.crs.CRS.from_epsg(32628)
        assert ds.transform == TRANSFORM
        assert (ds.height, ds.width) == (150, 170)
        assert ds.dtypes[0] == "uint8"
        assert ds.nodata == 0
        data = ds.read(1)
        tags = ds.tags()
        cmap = ds.colormap(1)
    expected = np.array([10, 80, 50], np.uint8)[single_pass(pixel_net(), img).argmax(0)]
    nodata = ~np.isfinite(img).all(0)
    assert (data[nodata] == 0).all()
    np.testing.assert_array_equal(data[~nodata], expected[~nodata])
    assert cmap[10] == (0, 100, 0, 255)
    assert cmap[80] == (0, 100, 200, 255)
    assert cmap[0][3] == 0
    assert json.loads(tags["classes"]) == ["tree", "water", "built_up"]
    assert json.loads(tags["class_values"]) == [10, 80, 50]
    assert tags["values"] == "codes"
    assert tags["model"] == "m.pt" and tags["experiment"] == "e1" and tags["device"] == "cpu"
    assert tags["image"] == str(src)
    with rasterio.open(conf) as ds:
        c = ds.read(1)
        assert ds.nodata == 255
        assert (c[nodata] == 255).all()
        assert c[~nodata].min() >= 33 and c[~nodata].max() <= 100
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "area.qml",  # the class names for QGIS and GDAL (test_legend.py)
        "area.tif",
        "area.tif.aux.xml",
        "area_confidence.tif",
    ]


def test_probability_cog_has_a_band_per_class_summing_to_100(tmp_path):
    img = image(90, 110)
    img[:, 5:15, 20:40] = np.nan  # nodata block
    src = write_image(tmp_path / "image.tif", img)
    out, probs = tmp_path / "maps" / "area.tif", tmp_path / "maps" / "area_probabilities.tif"
    predict_scene(
        scorer(pixel_net()),
        src,
        out,
        classes=CLASS_MAP,
        values="codes",
        window=64,
        overlap=16,
        batch_size=4,
        probabilities=probs,
    )
    assert cog_validate(str(probs), quiet=True)[0]
    with rasterio.open(probs) as ds, rasterio.open(out) as map_:
        assert ds.count == 3 and ds.descriptions == ("tree", "water", "built_up")
        assert ds.nodata == 255 and ds.dtypes == ("uint8",) * 3
        assert (ds.crs, ds.transform) == (map_.crs, map_.transform)
        percent, codes = ds.read().astype(int), map_.read(1)
    nodata = ~np.isfinite(img).all(0)
    assert (percent[:, nodata] == 255).all()
    total = percent[:, ~nodata].sum(axis=0)
    assert total.min() >= 98 and total.max() <= 102  # three roundings of at most 0.5 each
    winner = np.array([10, 80, 50], np.uint8)[percent.argmax(axis=0)]
    ties = np.sort(percent, axis=0)[-1] == np.sort(percent, axis=0)[-2]
    np.testing.assert_array_equal(winner[~nodata & ~ties], codes[~nodata & ~ties])


def test_predict_scene_writes_whole_rows_of_tiles(tmp_path, monkeypatch):
    # many rows of tiles in a small scene: the tiles' size (io) and the rows written (writer)
    monkeypatch.setattr(landcover.io, "BLOCKSIZE", 16)
    monkeypatch.setattr(landcover.mapping.writer, "BLOCKSIZE", 16)
    writes = []
    write = rasterio.io.DatasetWriter.write

    def recording(self, arr, indexes=None, window=None, **kwargs):
        writes.append((self.name, window))
        return write(self, arr, indexes, window=window, **kwargs)

    monkeypatch.setattr(rasterio.io.DatasetWriter, "write", recording)
    img = image(150, 70)
    src = write_image(tmp_path / "image.tif", img)
    out = tmp_path / "map.tif"
    conf = tmp_path / "conf.tif"
    predict_scene(
        scorer(pixel_net(), bands=[]),  # no bands: the image's, in file order
        src,
        out,
        classes=CLASS_MAP,
        values="indices",
        window=32,
        overlap=8,
        batch_size=1,
        confidence=conf,
    )
    windows = [w for name, w in writes if name.endswith("map.tif") and w is not None]
    tops = [int(w.row_off) for w in windows]
    ends = [int(w.row_off + w.height) for w in windows]
    assert tops == [0, *ends[:-1]] and ends[-1] == 150  # each row once, top to bottom
    assert all(t % 16 == 0 for t in tops) and all(int(w.width) == 70 for w in windows)
    with rasterio.open(out) as ds, rasterio.open(conf) as cds:
        np.testing.assert_array_equal(ds.read(1), single_pass(pixel_net(), img).argmax(0))
        assert ds.block_shapes == [(16, 16)]
        assert (cds.read(1) <= 100).all()


def test_predict_scene_in_class_indices(tmp_path):
    img = image(40, 30)
    img[:, :4] = np.nan
    src = write_image(tmp_path / "image.tif", img)
    out = tmp_path / "map.tif"
    predict_scene(
        scorer(ConstantNet([0, 0, 3])),
        src,
        out,
        classes=CLASS_MAP,
        values="indices",
        window=32,
        overlap=8,
        batch_size=8,
    )
    with rasterio.open(out) as ds:
        data = ds.read(1)
        assert ds.nodata == 255
        assert ds.colormap(1)[2] == (250, 0, 0, 255)
    assert (data[:4] == 255).all() and (data[4:] == 2).all()


def test_bands_are_read_by_name(tmp_path):
    img = image(20, 20)
    src = write_image(tmp_path / "image.tif", img[::-1], descriptions=BANDS[::-1])
    out = tmp_path / "map.tif"
    predict_scene(
        scorer(pixel_net()),
        src,
        out,
        classes=CLASS_MAP,
        values="indices",
        window=16,
        overlap=4,
        batch_size=8,
    )
    with rasterio.open(out) as ds:
        np.testing.assert_array_equal(ds.read(1), single_pass(pixel_net(), img).argmax(0))


def test_missing_band_is_a_data_error(tmp_path):
    src = write_image(tmp_path / "image.tif", image(20, 20))
    with pytest.raises(DataError, match=r"lacks band\(s\) \['B08'\]"):
        predict_scene(
            scorer(pixel_net(), bands=["B02", "B03", "B08"]),
            src,
            tmp_path / "map.tif",
            classes=CLASS_MAP,
            values="codes",
            window=256,
            overlap=64,
            batch_size=8,
        )


def test_failure_leaves_no_output(tmp_path):
    class Broken(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("boom")

    src = write_image(tmp_path / "image.tif", image(20, 20))
    out_dir = tmp_path / "maps"
    with pytest.raises(RuntimeError, match="boom"):
        predict_scene(
            scorer(Broken()),
            src,
            out_dir / "map.tif",
            classes=CLASS_MAP,
            values="codes",
            window=256,
            overlap=64,
            batch_size=8,
            confidence=out_dir / "conf.tif",
            probabilities=out_dir / "probabilities.tif",
        )
    assert list(out_dir.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present")
def test_asking_for_cuda_without_it_is_an_error(tmp_path):
    ckpt = checkpoint(tmp_path / "best.pt")
    with pytest.raises(
        ConfigError, match=r"device 'cuda' was asked for.*is_available\(\) is False"
    ):
        models.load("segmentation", ckpt, "cuda")  # never silently the CPU


def area_settings(**settings: object) -> dict[str, object]:
    """The validated ``predict`` section (the schema's defaults), without the confidence
    raster, with changes."""
    config = validated({"areas": {"a": {"bbox": [0.0, 0.0, 0.1, 0.1]}}})
    return {**config["predict"], "confidence": False, **settings}


def test_predict_area_loads_the_checkpoint(tmp_path, torch_threads):
    ckpt = checkpoint(tmp_path / "best.pt", precision="bf16")  # autocast on accelerators only
    src = write_image(tmp_path / "image.tif", image(20, 24))
    out = tmp_path / "map.tif"
    predict_area(
        ckpt,
        src,
        out,
        kind="segmentation",
        classes=CLASSES,
        ignore_codes=[],
        experiment="e",
        device="cpu",
        settings=area_settings(window=32, overlap=8),
        threads=1,
    )
    with rasterio.open(out) as ds:
        assert ds.tags()["model"] == str(ckpt) and ds.tags()["tta"] == "none"
        plain = ds.read(1)
    augmented = tmp_path / "tta.tif"
    predict_area(
        ckpt,
        src,
        augmented,
        kind="segmentation",
        classes=CLASSES,
        ignore_codes=[],
        experiment="e",
        device="cpu",
        settings=area_settings(window=32, overlap=8, tta="d4"),
        threads=1,
    )
    with rasterio.open(augmented) as ds:
        # the same grid and classes; the tag says how it was mapped
        assert ds.tags()["tta"] == "d4" and ds.read(1).shape == plain.shape
        assert set(np.unique(ds.read(1))) <= {0, 10, 50, 80}  # class codes or nodata


def test_predict_area_checks_the_classes_of_the_checkpoint(tmp_path, torch_threads):
    src = write_image(tmp_path / "image.tif", image(20, 24))
    other = checkpoint(tmp_path / "other.pt", classes=["tree", "water", "urban"])
    with pytest.raises(ConfigError, match="trained on classes"):
        predict_area(
            other,
            src,
            tmp_path / "other.tif",
            kind="segmentation",
            classes=CLASSES,
            ignore_codes=[],
            experiment="e",
            device="cpu",
            settings=area_settings(window=32, overlap=8),
            threads=1,
        )
    assert not (tmp_path / "other.tif").exists()


def test_predict_area_with_a_real_checkpoint(tmp_path, torch_threads):
    ckpt = checkpoint(tmp_path / "best.pt")
    img = image(70, 50)
    img[:, :, -3:] = np.nan
    src = write_image(tmp_path / "image.tif", img)
    out = tmp_path / "maps" / "e" / "cpu" / "area.tif"
    conf = tmp_path / "maps" / "e" / "cpu" / "area_confidence.tif"
    predict_area(
        ckpt,
        src,
        out,
        kind="segmentation",
        classes=CLASSES,
        ignore_codes=[],
        experiment="e",
        device="cpu",
        settings=area_settings(window=64, overlap=16, batch_size=2, confidence=True),
        threads=1,
        confidence=conf,
    )
    assert cog_validate(str(out), quiet=True)[0]
    assert cog_validate(str(conf), quiet=True)[0]
    with rasterio.open(out) as ds:
        data = ds.read(1)
        assert ds.tags()["experiment"] == "e"
        assert ds.tags()["window"] == "64" and ds.tags()["overlap"] == "16"
    assert set(np.unique(data[:, :-3])) <= {10, 80, 50}
    assert (data[:, -3:] == 0).all()
