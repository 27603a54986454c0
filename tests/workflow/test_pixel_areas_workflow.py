"""A scene without Earth coordinates through the whole chain (areas as pixel windows).

A single-band image and its mask, plain GeoTIFFs without a CRS or geotransform (as a
planetary or microscope image comes; ``landcover.sources.demo.craters``), cut into
three windows: the chain acquires,
aligns (no reprojection), tiles, splits, trains, maps and scores them; the maps have no
CRS and the shape of their window, and no NotGeoreferencedWarning fills the logs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import rasterio
import yaml

from landcover.sources.demo.craters import write_craters

WIDTH, HEIGHT = 384, 128
WINDOWS = {"west": [0, 0, 128, 128], "middle": [128, 0, 128, 128], "east": [256, 0, 128, 128]}


@pytest.fixture(scope="module")
def pixel_run(tmp_path_factory, tiny_config, run_snakemake) -> Path:
    workdir = tmp_path_factory.mktemp("pixels")
    write_craters(workdir, HEIGHT, WIDTH)
    config = tiny_config(
        areas={name: {"window": window} for name, window in WINDOWS.items()},
        holdout=["east"],
        imagery={"kind": "local", "root": "scene.tif", "bands": ["gray"], "scale": 1 / 255},
        labels={"kind": "local", "root": "scene_mask.tif"},
        classes=[
            {"name": "ground", "codes": [1], "colour": "#808080"},
            {"name": "crater", "codes": [2], "colour": "#FFFFFF"},
        ],
        ignore_codes=[],
    )
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    run = run_snakemake(workdir, "per_class_iou", "maps")
    assert run.returncode == 0, run.stderr[-4000:]
    return workdir


@pytest.mark.slow
def test_a_scene_without_crs_is_mapped_and_scored(pixel_run: Path) -> None:
    for name, (_, _, width, height) in WINDOWS.items():
        with rasterio.open(pixel_run / f"results/maps/unet/cpu/{name}.tif") as ds:
            assert ds.crs is None and (ds.width, ds.height) == (width, height)
            assert ds.colormap(1)[2][:3] == (255, 255, 255)  # crater white (code 2)
        with rasterio.open(pixel_run / f"results/aligned/{name}/labels.tif") as ds:
            assert ds.crs is None
    scores = pd.read_csv(pixel_run / "results/eval/unet/cpu/per_class_iou.csv")
    assert set(scores["class"]) >= {"ground", "crater"}
    assert {"iou", "precision", "recall"} <= set(scores.columns)
    metrics = json.loads((pixel_run / "results/eval/pixel/cpu/metrics.json").read_text())
    assert metrics["miou"] > 0.5  # bright discs on dark ground: the per-pixel model finds them


@pytest.mark.slow
def test_windows_of_one_file_keep_the_buffer_between_them(pixel_run: Path) -> None:
    index = pd.read_parquet(pixel_run / "results/patches/index.parquet")
    assert set(index.loc[index["area"] == "east", "split"]) == {"holdout"}
    # middle's patches touching east (its columns 256..) are buffer, not train
    middle = index[index["area"] == "middle"]
    touching = middle[middle["col"] + middle["size"] >= 128]
    assert len(touching) and (touching["split"] != "train").all()


@pytest.mark.slow
def test_no_georeferencing_warnings_in_the_logs(pixel_run: Path) -> None:
    logs = "".join(p.read_text() for p in (pixel_run / "logs").rglob("*.log"))
    assert "NotGeoreferencedWarning" not in logs
