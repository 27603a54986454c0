"""Sliding-window mapping: blending, edges, bounded memory and the COG it writes."""

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
import landcover.mapping.engine
import landcover.mapping.writer
from landcover import models
from landcover.classes import ClassMap
from landcover.errors import ConfigError, DataError
from landcover.mapping.engine import (
    StripAccumulator,
    blend_weights,
    iter_probability_blocks,
    iter_probability_strips,
    pad_to,
    predict_array,
    window_batch,
    window_starts,
)
from landcover.mapping.scene import predict_area, predict_scene
from landcover.mapping.writer import GDAL_CACHE_MB, class_values, gdal_env, labels_from_probs
from landcover.models.segmentation.data import normalise
from landcover.models.segmentation.nets import build_model, save_checkpoint
from landcover.models.segmentation.scorer import SegmentationScorer, torch_dtype

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


def conv_net(seed: int = 0) -> torch.nn.Module:
    """3x3 convolutions with zero padding: equivariant away from a window's edges."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 3, padding=1)
    ).eval()


class ConstantNet(torch.nn.Module):
    """The same scores everywhere, whatever the input."""

    def __init__(self, scores: list[float]) -> None:
        super().__init__()
        self.scores = torch.tensor(scores)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        return self.scores.view(1, -1, 1, 1).expand(b, -1, h, w).clone()


class WindowMeanNet(torch.nn.Module):
    """Scores from each window's band means plus a 1x1 convolution: every window differs."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.pixel = torch.nn.Conv2d(3, 3, 1)
        self.mean = torch.nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pixel(x) + 5 * self.mean(x.mean(dim=(2, 3)))[:, :, None, None]


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


def reference_blend(
    model: torch.nn.Module, img: np.ndarray, window: int, overlap: int
) -> np.ndarray:
    """The blend computed naively with whole-scene sums (scenes at least one window large)."""
    _, height, width = img.shape
    weights = blend_weights(window, overlap)
    sums = np.zeros((3, height, width))
    total = np.zeros((height, width))
    for r in window_starts(height, window, overlap):
        for c in window_starts(width, window, overlap):
            probs = single_pass(model, img[:, r : r + window, c : c + window])
            sums[:, r : r + window, c : c + window] += probs * weights
            total[r : r + window, c : c + window] += weights
    return sums / total


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


# --------------------------------------------------------------------------- windows


def test_window_starts_cover_the_scene_and_end_on_its_edge():
    assert window_starts(100, 32, 8) == [0, 24, 48, 68]
    assert window_starts(32, 32, 8) == [0]
    assert window_starts(10, 32, 8) == [0]
    assert window_starts(64, 32, 0) == [0, 32]


@pytest.mark.parametrize(("window", "overlap"), [(32, 32), (32, -1), (0, 0)])
def test_bad_window_is_a_config_error(window, overlap):
    with pytest.raises(ConfigError, match="overlap < window"):
        window_starts(100, window, overlap)


def test_blend_weights_are_a_partition_of_unity_over_the_overlap():
    w = blend_weights(32, 8, floor=1e-6)[16]  # one row through the middle
    np.testing.assert_allclose(w[24:] + w[:8], 1.0, atol=1e-6)
    assert w[8:24].min() == pytest.approx(1.0)
    assert blend_weights(32, 8, floor=0.01).min() == pytest.approx(0.01)
    assert np.all(blend_weights(16, 0) == 1)


# --------------------------------------------------------------------------- no seams


@pytest.mark.parametrize(("height", "width"), [(70, 90), (64, 64), (33, 97)])
def test_mosaic_equals_single_pass_for_a_pixelwise_model(height, width):
    model, img = pixel_net(), image(height, width)
    probs = predict_array(scorer(model), img, window=32, overlap=8, batch_size=3)
    assert probs.shape == (3, height, width)
    np.testing.assert_allclose(probs, single_pass(model, img), atol=1e-5)


def test_mosaic_of_a_conv_net_has_no_seams():
    """Window edges (zero padding) differ from a single pass; blending hides them."""
    model, img = conv_net(), image(80, 100)
    whole = single_pass(model, img)
    blended = predict_array(scorer(model), img, window=32, overlap=12, batch_size=8)
    error = np.abs(blended - whole)
    assert error.max() < 0.06 and error.mean() < 1e-3
    assert (blended.argmax(0) != whole.argmax(0)).mean() < 1e-3
    # with flat weights (no blending) the window edges show
    flat = predict_array(scorer(model), img, window=32, overlap=12, batch_size=8, floor=1.0)
    assert np.abs(flat - whole).mean() > 10 * error.mean()


@pytest.mark.parametrize(
    ("height", "width", "batch_size"),
    [(70, 90, 3), (58, 41, 1), (58, 200, 2), (32, 33, 8), (100, 64, 4)],
)
def test_blocks_blend_every_window_as_whole_scene_sums_would(height, width, batch_size):
    """Column chunks and carried rows give the naive blend; 58 rows: three strips share rows."""
    model, img = WindowMeanNet(), image(height, width)
    probs = predict_array(scorer(model), img, window=32, overlap=8, batch_size=batch_size)
    np.testing.assert_allclose(probs, reference_blend(model, img, 32, 8), atol=1e-5)


def test_scene_smaller_than_one_window_is_padded_and_cropped():
    model, img = pixel_net(), image(13, 20)
    probs = predict_array(scorer(model), img, window=32, overlap=8, batch_size=8)
    assert probs.shape == (3, 13, 20)
    np.testing.assert_allclose(probs, single_pass(model, img), atol=1e-5)


def test_single_row_scene():
    model, img = pixel_net(), image(1, 50)
    probs = predict_array(scorer(model), img, window=16, overlap=4, batch_size=8)
    np.testing.assert_allclose(probs, single_pass(model, img), atol=1e-5)


def test_constant_model_gives_a_constant_map():
    img = image(45, 70)
    img[:, :5, :5] = np.nan
    probs = predict_array(
        scorer(ConstantNet([0.0, 2.0, 1.0])), img, window=16, overlap=6, batch_size=8
    )
    expected = torch.softmax(torch.tensor([0.0, 2.0, 1.0]), 0).numpy()
    np.testing.assert_allclose(
        probs, np.broadcast_to(expected[:, None, None], probs.shape), atol=1e-6
    )
    assert (probs.argmax(0) == 1).all()


def test_model_with_wrong_class_count_is_a_data_error():
    with pytest.raises(DataError, match="scores 2 classes"):
        predict_array(
            scorer(ConstantNet([0.0, 1.0])), image(8, 8), window=8, overlap=0, batch_size=8
        )


# --------------------------------------------------------------------------- bounded memory


@pytest.mark.parametrize("height", [40, 400])
def test_strip_accumulator_does_not_grow_with_the_scene_height(monkeypatch, height):
    made: list[StripAccumulator] = []

    class Recording(StripAccumulator):
        def __init__(self, *args: int) -> None:
            super().__init__(*args)
            made.append(self)

    monkeypatch.setattr(landcover.mapping.engine, "StripAccumulator", Recording)
    img = image(height, 48)

    def read(win):
        r, c = int(win.row_off), int(win.col_off)
        assert win.height <= 32  # reads never exceed one strip
        return img[:, r : r + int(win.height), c : c + int(win.width)]

    rows = []
    for strip in iter_probability_strips(
        read,
        img.shape[1:],
        scorer(ConstantNet([0, 1, 0])),
        window=32,
        overlap=8,
        batch_size=8,
    ):
        assert strip.probs.shape[1] <= 32
        rows.extend(range(strip.row, strip.row + strip.probs.shape[1]))
    assert rows == list(range(height))  # every row exactly once, in order
    assert len(made) == 1
    assert made[0].probs.shape == (3, 32, 48)
    assert made[0].weights.shape == (32, 48)


def test_memory_does_not_grow_with_the_scene_width_but_for_the_shared_rows(monkeypatch):
    made: list[StripAccumulator] = []

    class Recording(StripAccumulator):
        def __init__(self, *args: int) -> None:
            super().__init__(*args)
            made.append(self)

    monkeypatch.setattr(landcover.mapping.engine, "StripAccumulator", Recording)
    img = image(80, 500)
    reads = []

    def read(win):
        reads.append(win)
        r, c = int(win.row_off), int(win.col_off)
        return img[:, r : r + int(win.height), c : c + int(win.width)]

    covered = np.zeros(img.shape[1:], int)
    blocks = iter_probability_blocks(
        read, img.shape[1:], scorer(pixel_net()), window=32, overlap=8, batch_size=2
    )
    order = []
    for block in blocks:
        h, w = block.probs.shape[1:]
        assert block.valid.shape == (h, w) and w <= 48
        covered[block.row : block.row + h, block.col : block.col + w] += 1
        order.append((block.row, block.col))
    assert (covered == 1).all()  # every pixel exactly once
    assert order == sorted(order)  # row-major
    assert max(int(win.width) for win in reads) == 56  # one batch: 24 + 32 columns
    (acc,) = made
    assert acc.probs.shape == (3, 32, 56)  # the batch's columns, not the width
    assert acc.carry_probs.shape == (3, 8, 500)  # only the overlap rows span the width


class Spy(torch.nn.Module):
    """Records the batches it is given; scores zero everywhere."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.clone())
        return torch.zeros(x.shape[0], 3, *x.shape[2:])


@pytest.mark.parametrize("channels_last", [False, True])
def test_windows_are_cut_raw_and_normalised_by_the_scorer_as_in_training(channels_last):
    pixels = image(6, 11)
    pixels[0, 1, 2], pixels[1, 3, 3], pixels[2, 5, 0] = np.nan, np.inf, -np.inf
    before = pixels.copy()
    batch = window_batch(pixels, [0, 3, 6], 8, channels_last)
    assert batch.shape == (3, 3, 8, 8)
    assert batch.is_contiguous(
        memory_format=torch.channels_last if channels_last else torch.contiguous_format
    )
    windows = [pad_to(pixels[:, :, c : c + 8], 8, 8) for c in [0, 3, 6]]
    for k, window in enumerate(windows):  # raw reflectance, padded at the edges
        np.testing.assert_array_equal(batch[k].numpy(), window)
    np.testing.assert_array_equal(pixels, before)  # the read block is left alone
    spy = Spy()
    probs = scorer(spy)(batch)
    assert probs.shape == (3, 3, 8, 8) and probs.dtype == np.float32
    (seen,) = spy.seen
    mean, std = np.asarray(MEAN, np.float32), np.asarray(STD, np.float32)
    for k, window in enumerate(windows):  # bit for bit training's values
        np.testing.assert_array_equal(seen[k].numpy(), normalise(window, mean, std))
    np.testing.assert_array_equal(pixels, before)  # the batch is normalised, not the block


def test_scorer_checks_bands_std_and_window_multiple(tmp_path):
    with pytest.raises(DataError, match="image has 2 bands but the model expects 3"):
        scorer(pixel_net())(torch.zeros(1, 2, 8, 8))
    with pytest.raises(DataError, match="std"):
        SegmentationScorer(
            pixel_net(),
            {"mean": MEAN, "std": [0.1, 0.0, 0.2], "classes": NAMES},
            torch.device("cpu"),
        )
    smp_like = SegmentationScorer(
        pixel_net(),
        {"mean": MEAN, "std": STD, "classes": NAMES, "bands": BANDS},
        torch.device("cpu"),
    )
    assert smp_like.window_multiple == 32
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


def test_mapping_leaves_the_callers_image_alone():
    img = image(40, 50)
    img[0, 3, 4] = np.nan
    before = img.copy()
    predict_array(scorer(pixel_net()), img, window=16, overlap=4, batch_size=8)
    np.testing.assert_array_equal(img, before)  # batches are normalised in place, not reads


def test_labels_take_the_first_of_equal_maxima():
    probs = np.array([[[0.2, 0.5]], [[0.5, 0.5]], [[0.3, 0.0]]], np.float32)  # (3, 1, 2)
    values, conf = labels_from_probs(
        probs, np.array([[True, False]]), np.array([10, 80, 50], np.uint8), 0
    )
    assert values.tolist() == [[80, 0]] and conf.tolist() == [[50, 255]]
    values, _ = labels_from_probs(probs, np.ones((1, 2), bool), np.array([10, 80, 50], np.uint8), 0)
    assert values.tolist() == [[80, 10]]  # a tie goes to the first class, as argmax does


def test_bad_batch_size_is_a_config_error():
    with pytest.raises(ConfigError, match="batch_size"):
        predict_array(scorer(pixel_net()), image(8, 8), window=8, overlap=0, batch_size=0)


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
    assert sorted(p.name for p in out.parent.iterdir()) == ["area.tif", "area_confidence.tif"]


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


def test_gdal_cache_is_bounded_unless_the_environment_sets_it(monkeypatch):
    monkeypatch.delenv("GDAL_CACHEMAX", raising=False)
    monkeypatch.delenv("GDAL_NUM_THREADS", raising=False)
    assert gdal_env(3) == {"GDAL_CACHEMAX": GDAL_CACHE_MB, "GDAL_NUM_THREADS": "3"}
    monkeypatch.setenv("GDAL_CACHEMAX", "512")
    monkeypatch.setenv("GDAL_NUM_THREADS", "ALL_CPUS")
    assert gdal_env(3) == {}


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
        )
    assert list(out_dir.iterdir()) == []


def test_codes_that_do_not_fit_uint8_are_a_config_error():
    big = ClassMap.from_config([{"name": "a", "codes": [300], "colour": "#000000"}])
    with pytest.raises(ConfigError, match="values: indices"):
        class_values(big, "codes")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA present")
def test_asking_for_cuda_without_it_is_an_error(tmp_path):
    ckpt = checkpoint(tmp_path / "best.pt")
    with pytest.raises(
        ConfigError, match=r"device 'cuda' was asked for.*is_available\(\) is False"
    ):
        models.load("segmentation", ckpt, "cuda")  # never silently the CPU


def test_precision_names():
    assert torch_dtype("bf16-mixed") is torch.bfloat16
    assert torch_dtype("16") is torch.float16
    assert torch_dtype(None) is None
    with pytest.raises(ConfigError, match="precision"):
        torch_dtype("int8")


def area_settings(**settings: object) -> dict[str, object]:
    """The validated ``predict`` section (schema defaults: 256, 64, 8, codes) with changes."""
    return {
        "values": "codes",
        "window": 256,
        "overlap": 64,
        "batch_size": 8,
        "confidence": False,
        **settings,
    }


def test_predict_area_loads_the_checkpoint_and_checks_classes(tmp_path, torch_threads):
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
        assert ds.tags()["model"] == str(ckpt)
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
