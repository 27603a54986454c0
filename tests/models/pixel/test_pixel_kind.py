"""The per-pixel model kind: pixel sampling, features, training outputs, the scorer."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from landcover import models
from landcover.classes import ClassMap
from landcover.errors import DataError
from landcover.models import Outputs
from landcover.models.pixel.samples import draw, feature_names, features, sample_rows

SETTINGS = {"kind": "pixel", "trees": 60, "max_pixels": 4000}


def test_indices_are_added_when_their_bands_are_there():
    assert feature_names(["B02", "B03", "B04", "B08"]) == [
        "B02",
        "B03",
        "B04",
        "B08",
        "NDVI",
        "NDWI",
    ]
    pixels = np.array([[0.1, 0.2, 0.1, 0.3], [np.nan, 0.2, 0.0, 0.0]], np.float32)
    x = features(pixels, ["B02", "B03", "B04", "B08"])
    assert x.shape == (2, 6) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, 4:], [0.5, -0.2], rtol=1e-6)  # (0.3-0.1)/0.4, (0.2-0.3)/0.5
    assert np.isnan(x[1, 0]) and np.isnan(x[1, 4])  # missing stays missing; 0/0 too


def test_sample_rows_draws_without_replacement():
    rows = sample_rows(100, 10, np.random.default_rng(0))
    assert len(set(rows)) == 10 and (np.diff(rows) > 0).all()
    assert sample_rows(5, 10, np.random.default_rng(0)).tolist() == [0, 1, 2, 3, 4]


def test_draw_takes_only_labelled_valid_pixels(patch_store):
    table = pd.read_parquet(patch_store["index"])
    train = table[table["split"] == "train"]
    x, y = draw(patch_store["stores"], train, 2000, seed=0)
    assert len(x) == len(y) <= 2000 and len(y) > 1000
    assert np.isfinite(x).all() and (y < len(patch_store["classes"])).all()
    again, _ = draw(patch_store["stores"], train, 2000, seed=0)
    np.testing.assert_array_equal(x, again)  # seeded


@pytest.fixture(scope="module")
def trained(patch_store, tmp_path_factory):
    out = tmp_path_factory.mktemp("pixel")
    outputs = Outputs(*(out / n for n in ("best.pt", "last.pt", "history.csv", "hardware.json")))
    summary = models.train(
        "pixel",
        stores=patch_store["stores"],
        index=patch_store["index"],
        class_weights=patch_store["class_weights"],
        outputs=outputs,
        bands=patch_store["bands"],
        classes=patch_store["classes"],
        model=SETTINGS,
        training={},
        device="cuda",  # the pixel kind runs on the CPU whatever the job's device
        threads=1,
        seed=3,
        processes=1,
    )
    return outputs, summary


def test_training_writes_the_declared_outputs(trained):
    outputs, summary = trained
    history = pd.read_csv(outputs.history)
    for column in ("epoch", "train_loss", "val_loss", "val_miou"):
        assert column in history.columns
    assert summary["best_epoch"] in history["epoch"].tolist()
    assert summary["best_miou"] == pytest.approx(history["val_miou"].max())
    assert summary["best_miou"] > 0.8  # the synthetic classes differ in their bands


def test_a_cuda_job_says_it_ran_on_the_cpu(trained):
    outputs, _ = trained
    hardware = json.loads(outputs.hardware.read_text())
    assert hardware["device"] == "cpu" and hardware["precision"] == "fp32"


def test_artefacts_load_safely_with_the_kept_rounds(trained):
    outputs, summary = trained
    best = torch.load(outputs.best, weights_only=True)
    last = torch.load(outputs.last, weights_only=True)
    assert best["meta"]["rounds"] == summary["best_epoch"]
    assert last["meta"]["rounds"] == summary["epochs"] >= best["meta"]["rounds"]


def test_scorer_gives_probabilities_per_pixel(trained, patch_store):
    outputs, _ = trained
    scorer = models.load("pixel", outputs.best, "cuda")
    assert scorer.classes == patch_store["classes"] and scorer.bands == patch_store["bands"]
    assert scorer.window_multiple == 1 and scorer.device == "cpu"
    images, labels = patch_store["read"]("a", 2)
    probs = scorer(torch.from_numpy(images.copy()))
    assert probs.shape == (2, len(scorer.classes), *images.shape[2:])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    valid = labels != 255
    assert (probs.argmax(axis=1)[valid] == labels[valid]).mean() > 0.8


def test_a_pixel_is_scored_alone(trained, patch_store):
    """No spatial context: a pixel's probabilities do not depend on its neighbours."""
    scorer = models.load("pixel", trained[0].best, "cpu")
    images = patch_store["read"]("a", 1)[0]
    flipped = images[..., ::-1].copy()
    np.testing.assert_allclose(
        scorer(torch.from_numpy(images))[..., ::-1], scorer(torch.from_numpy(flipped)), atol=1e-6
    )


def test_not_a_pixel_model_is_a_data_error(tmp_path):
    path = tmp_path / "best.pt"
    torch.save({"state_dict": {}, "meta": {}}, path)
    with pytest.raises(DataError, match="not a per-pixel model"):
        models.load("pixel", path, "cpu")


def test_a_scene_is_mapped_without_overlap(trained, patch_store, tmp_path):
    """Overlapping windows only cost a per-pixel model: it maps with none, same map."""
    import rasterio
    from affine import Affine

    from landcover.mapping.scene import predict_scene

    image = patch_store["read"]("a", 1)[0][0].astype("float32")  # (bands, h, w)
    path = tmp_path / "image.tif"
    profile = {"driver": "GTiff", "count": image.shape[0], "dtype": "float32"}
    with rasterio.open(
        path, "w", **profile, height=image.shape[1], width=image.shape[2],
        crs="EPSG:32628", transform=Affine(10, 0, 0, 0, -10, 0),
    ) as dst:  # fmt: skip
        dst.write(image)
        dst.descriptions = tuple(patch_store["bands"])
    scorer = models.load("pixel", trained[0].best, "cpu")
    classes = [
        {"name": c, "codes": [i + 1], "colour": "#808080"}
        for i, c in enumerate(patch_store["classes"])
    ]
    blended = Blended(scorer)  # the same model, its windows overlapping as a network's
    maps = {}
    for name, engine in (("blended", blended), ("per_pixel", scorer)):
        out = tmp_path / f"{name}.tif"
        predict_scene(
            engine, path, out, classes=ClassMap.from_config(classes, []), values="codes",
            window=16, overlap=8, batch_size=4,
        )  # fmt: skip
        with rasterio.open(out) as ds:
            maps[name] = (ds.tags()["overlap"], ds.read(1))
    assert maps["blended"][0] == "8" and maps["per_pixel"][0] == "0"
    np.testing.assert_array_equal(maps["blended"][1], maps["per_pixel"][1])


class Blended:
    """A scorer without the per-pixel flag: the mapper overlaps and blends its windows."""

    def __init__(self, scorer) -> None:
        self.scorer = scorer

    def __getattr__(self, name: str):
        if name == "per_pixel":
            raise AttributeError(name)
        return getattr(self.scorer, name)

    def __call__(self, batch):
        return self.scorer(batch)
