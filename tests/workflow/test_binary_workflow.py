"""A two-class task through the `snakemake` command: water against everything else.

The tiny config with a binary class map (the demo's WorldCover codes: 80 is water, every
other land code background) runs its default target once per module, the network with
positive sampling (``training.positive_fraction``); the tests check the scores of the
positive class, the maps' colour tables and legends, the figures and the report.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import rasterio
import yaml

CLASSES = [
    {"name": "background", "codes": [10, 20, 30, 40, 50, 60, 90, 95], "colour": "#B4B4B4"},
    {"name": "water", "codes": [80], "colour": "#0064C8"},
]
EXPERIMENTS = ("unet", "pixel")  # the tiny config's


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tiny_config, run_snakemake) -> Path:
    """The binary tiny config's default target, run once: models, maps, scores, figures."""
    workdir = tmp_path_factory.mktemp("binary")
    config = tiny_config(classes=CLASSES)
    training = {"positive_fraction": 0.5, "positive_class": "water"}
    config["training"] = {**config["training"], **training}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    run = run_snakemake(workdir)
    assert run.returncode == 0, run.stderr[-4000:]
    return workdir


@pytest.mark.slow
def test_per_class_table_scores_the_positive_class(workdir):
    for experiment in EXPERIMENTS:
        table = pd.read_csv(workdir / f"results/eval/{experiment}/cpu/per_class_iou.csv")
        assert table["class"].tolist() == ["background", "water"]
        water = table.set_index("class").loc["water"]
        assert water["support"] > 0  # the held-out delta has water
        for score in ("iou", "recall", "f1"):
            assert 0 <= water[score] <= 1, (experiment, score)
        # precision is undefined (NaN) only when no pixel was predicted water
        assert 0 <= water["precision"] <= 1 or (
            math.isnan(water["precision"]) and water["predicted"] == 0
        )
        metrics = json.loads((workdir / f"results/eval/{experiment}/cpu/metrics.json").read_text())
        assert metrics["classes"] == ["background", "water"]
        assert set(metrics["per_class_iou"]) == {"background", "water"}


@pytest.mark.slow
def test_maps_carry_two_classes_and_nodata(workdir, tiny_config):
    for area in tiny_config()["areas"]:
        path = workdir / f"results/maps/unet/cpu/{area}.tif"
        with rasterio.open(path) as map_:
            colours = map_.colormap(1)
            values = set(map_.read(1).ravel().tolist())
            assert json.loads(map_.tags()["classes"]) == ["background", "water"]
        assert values <= {0, 10, 80}  # each class's first code, nodata 0
        assert colours[10][:3] == (180, 180, 180) and colours[80][:3] == (0, 100, 200)
        assert colours[0][3] == 0  # nodata: transparent
        # the colour table holds the two classes and nodata; GDAL fills the rest opaque black
        assert {v for v, c in colours.items() if c != (0, 0, 0, 255)} == {0, 10, 80}
        style = path.with_suffix(".qml").read_text()
        assert style.count("<paletteEntry") == 2 and 'label="water"' in style
        assert (path.parent / f"{area}.tif.aux.xml").exists()


@pytest.mark.slow
def test_network_trained_with_positive_sampling(workdir):
    log = (workdir / "logs/train_model/unet/cpu.log").read_text()
    assert "positive sampling" in log and "'water'" in log
    history = pd.read_csv(workdir / "results/models/unet/cpu/history.csv")
    assert {"iou_background", "iou_water"} <= set(history.columns)
    weights = json.loads((workdir / "results/patches/class_weights.json").read_text())
    assert weights["classes"] == ["background", "water"] and len(weights["weights"]) == 2


@pytest.mark.slow
def test_figures_and_report_of_a_binary_task(workdir, tiny_config, run_snakemake):
    figures = workdir / "results/figures"
    for experiment in EXPERIMENTS:
        for name in ("per_class_iou", "confusion", "learning_curves"):
            assert (figures / experiment / "cpu" / f"{name}.png").stat().st_size > 0
        for area in tiny_config()["areas"]:
            assert (figures / experiment / "cpu" / f"area_{area}.png").stat().st_size > 0
    assert (figures / "leaderboard.png").stat().st_size > 0
    board = pd.read_csv(workdir / "results/experiments.csv")
    assert {"iou_background", "iou_water"} <= set(board.columns)
    run = run_snakemake(workdir, "--report", "report.html")
    assert run.returncode == 0, run.stderr[-3000:]
    html = (workdir / "report.html").read_text()
    assert "per_class_iou.csv" in html and "area_delta.png" in html
