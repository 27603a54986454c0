"""The workflow through the `snakemake` command, on a tiny config in a tmp dir."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import yaml
from conftest import ROOT

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))

TINY = {
    "areas": {
        "lakeside": {"bbox": [-15.90, 16.10, -15.888, 16.112], "landscape": "lake"},
        "city": {"bbox": [-17.47, 14.68, -17.458, 14.692], "landscape": "city"},
        # straddles 15 N: labels come from two WorldCover tiles
        "delta": {"bbox": [-16.52, 14.994, -16.508, 15.006], "landscape": "delta"},
    },
    "holdout": ["delta"],
    "imagery": {"max_cloud": 90, "max_items": 2, "bands": ["B02", "B03", "B04", "B08", "B11"]},
    "demo": {"n_dates": 2},
    "ignore_codes": [70, 100],
    "patches": {"size": 32, "stride": 32, "min_valid": 0.3},
    "split": {"method": "areas+blocks", "block_size": 64, "buffer": 8, "val_fraction": 0.3},
}


def snakemake(
    workdir: Path, *args: str, config: str = "config.yaml"
) -> subprocess.CompletedProcess:
    command = [
        SNAKEMAKE,
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / config),
        "--cores",
        "2",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("workflow")
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config.update(TINY)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    run = snakemake(workdir, "data")
    assert run.returncode == 0, run.stderr[-4000:]
    return workdir


@pytest.mark.slow
def test_data_half_outputs(workdir):
    areas = TINY["areas"]
    for area in areas:
        with (
            rasterio.open(workdir / f"results/aligned/{area}/image.tif") as image,
            rasterio.open(workdir / f"results/aligned/{area}/labels.tif") as labels,
        ):
            assert image.crs == labels.crs and image.crs.to_epsg() == 32628
            assert image.transform == labels.transform and image.shape == labels.shape
            assert image.count == len(TINY["imagery"]["bands"]) and image.dtypes[0] == "float32"
            assert labels.dtypes[0] == "uint8" and labels.nodata == 255
            values = labels.read(1)
            assert (values[values != 255] < 9).all()
            reflectance = image.read(1)
            assert np.nanmedian(reflectance) < 0.5  # scaled to reflectance, not DN
    index = gpd.read_parquet(workdir / "results/patches/index.parquet")
    assert index.crs.to_epsg() == 4326
    assert set(index.loc[index["area"] == "delta", "split"]) == {"holdout"}
    assert {"train", "val"} <= set(index.split)
    store = np.load(workdir / "results/patches/lakeside/images.npy", mmap_mode="r")
    assert store.shape[1:] == (5, 32, 32)
    weights = json.loads((workdir / "results/patches/class_weights.json").read_text())
    assert len(weights["weights"]) == 9
    assert all(w >= 0 for w in weights["weights"])
    # the delta's labels came from two tiles
    tags = rasterio.open(workdir / "resources/raw/delta/labels.tif").tags()
    assert "N12W018" in json.dumps(tags) and "N15W018" in json.dumps(tags)


@pytest.mark.slow
def test_nothing_left_to_do_after_a_run(workdir):
    run = snakemake(workdir, "data", "-n")
    assert run.returncode == 0
    assert "Nothing to be done" in run.stdout + run.stderr


@pytest.mark.slow
def test_missing_class_code_fails_and_leaves_no_output(workdir):
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["classes"] = [c for c in config["classes"] if c["name"] != "water"]
    (workdir / "bad.yaml").write_text(yaml.safe_dump(config))
    run = snakemake(workdir, "results/aligned/lakeside/labels.tif", config="bad.yaml")
    assert run.returncode != 0
    log = (workdir / "logs/align_area/lakeside.log").read_text()
    assert "lakeside" in log and "[80]" in log and "ignore_codes" in log
    assert not (workdir / "results/aligned/lakeside/labels.tif").exists()
    assert not (workdir / "results/aligned/lakeside/image.tif").exists()


def test_bad_config_fails_before_any_job(tmp_path):
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["holdout"] = ["atlantis"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    run = snakemake(tmp_path, "-n")
    assert run.returncode != 0
    assert "holdout: area 'atlantis' is not defined" in run.stdout + run.stderr
    assert not (tmp_path / "resources").exists()


def test_lint_is_clean(tmp_path):
    run = subprocess.run(
        [SNAKEMAKE, "--lint", "--cores", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert (
        "Congratulations" in run.stdout + run.stderr
        or "no lints" in (run.stdout + run.stderr).lower()
    )


def test_snakefmt_is_clean():
    snakefmt = shutil.which("snakefmt", path=str(Path(sys.executable).parent))
    run = subprocess.run(
        [snakefmt, "--check", "Snakefile", "rules"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
