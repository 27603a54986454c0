"""config/senegal.yaml: a valid config of four real areas, planned by a dry run offline.

The dry runs go through the `snakemake` command with every proxy pointing at a dead
port: a plan that tried to reach the internet would fail.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from landcover.classes import ClassMap
from landcover.config import area_table, check_config, validated
from landcover.grid import area_grid, worldcover_tiles

SENEGAL_AREAS = {"lac_de_guiers", "dakar", "casamance", "sine_saloum"}
DEAD = "http://127.0.0.1:9"
OFFLINE = {
    "HTTP_PROXY": DEAD,
    "HTTPS_PROXY": DEAD,
    "GDAL_HTTP_PROXY": DEAD,
    "http_proxy": DEAD,
    "https_proxy": DEAD,
    "NO_PROXY": None,
    "no_proxy": None,
}
"""Every proxy at a dead port, no exceptions (``None`` removes a variable)."""


def test_senegal_config_is_valid(repo_root: Path) -> None:
    config = validated(yaml.safe_load((repo_root / "config" / "senegal.yaml").read_text()))
    areas = area_table(config["areas"])
    check_config(config, areas)
    assert set(areas) == SENEGAL_AREAS
    assert config["holdout"] == ["sine_saloum"]
    for area in areas.values():
        west, south, east, north = area.bbox
        assert 0.05 <= east - west <= 0.15 and 0.05 <= north - south <= 0.15  # minutes, not hours
        assert area_grid(area.bbox, 10).crs == "EPSG:32628"  # Senegal: UTM 28N
        assert {tile for tile, _ in worldcover_tiles(area.bbox)} <= {"N12W018", "N15W018"}
    imagery, labels = config["imagery"], config["labels"]
    assert (imagery["kind"], imagery["collection"]) == ("stac", "sentinel-2-l2a")
    assert imagery["root"] == "https://earth-search.aws.element84.com/v1"
    assert imagery["dates"] == ["2023-01-01", "2023-03-31"] and imagery["max_cloud"] == 20
    assert (labels["kind"], labels["version"]) == ("worldcover", "v200")
    assert labels["root"] == "https://esa-worldcover.s3.eu-central-1.amazonaws.com"
    # every WorldCover code is a class or ignored; snow and moss are absent in Senegal
    class_map = ClassMap.from_config(config["classes"], config["ignore_codes"])
    codes = {code for codes in class_map.codes for code in codes}
    assert codes | set(class_map.ignore_codes) == {10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100}
    assert set(class_map.ignore_codes) == {70, 100} and 95 in codes


@pytest.fixture
def dry_run(repo_root: Path, run_snakemake):
    """``dry_run(workdir)``: ``snakemake -n --configfile config/senegal.yaml`` offline."""

    def run(workdir: Path) -> subprocess.CompletedProcess:
        senegal = repo_root / "config" / "senegal.yaml"
        return run_snakemake(workdir, "-n", config=senegal, cores=8, env=OFFLINE, timeout=300)

    return run


def planned_areas(run: subprocess.CompletedProcess) -> set[str]:
    return set(re.findall(r"resources/raw/([A-Za-z0-9_-]+)/labels\.tif", run.stdout))


@pytest.mark.slow
def test_senegal_dry_run_offline(tmp_path: Path, dry_run) -> None:
    run = dry_run(tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert planned_areas(run) == SENEGAL_AREAS
    assert "acquire_imagery" in run.stdout and "make_demo_bucket" not in run.stdout


@pytest.mark.slow
def test_senegal_dry_run_from_repository_root(tmp_path: Path, repo_root: Path, dry_run) -> None:
    # the demo config sits where the Snakefile's `configfile:` finds it: it must not be
    # merged into the given one (that would add the four demo areas)
    (tmp_path / "config").mkdir()
    shutil.copy(repo_root / "config" / "config.yaml", tmp_path / "config" / "config.yaml")
    run = dry_run(tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert planned_areas(run) == SENEGAL_AREAS
