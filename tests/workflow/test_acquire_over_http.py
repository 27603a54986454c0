"""The acquire rules through the `snakemake` command, with the real source kinds over HTTP.

The demo bucket is served on 127.0.0.1 (the ``serve`` fixture) as the public sources
publish it: WorldCover tiles, band COGs and a STAC API (tests/sources/test_http_sources.py
tests the readers themselves).
"""

from __future__ import annotations

from pathlib import Path

import pystac
import pytest
import rasterio
import yaml

from landcover.sources.demo.bucket import make_demo_bucket

WORKFLOW_AREAS = {
    "lakeside": {"bbox": [-15.90, 16.10, -15.888, 16.112], "landscape": "lake"},
    # straddles 15 N: labels come from two WorldCover tiles
    "delta": {"bbox": [-16.52, 14.994, -16.508, 15.006], "landscape": "delta"},
}


KINDS = ("imagery", "labels")


def published_items(bucket: Path, server) -> list[dict]:
    """The demo bucket's static catalog as API items, asset hrefs on the server."""
    catalog = pystac.Catalog.from_file(str(bucket / "stac" / "catalog.json"))
    items = []
    for item in catalog.get_items(recursive=True):
        for asset in item.assets.values():
            rel = Path(asset.get_absolute_href()).resolve().relative_to(bucket.resolve())
            asset.href = server.url(rel)
        document = item.to_dict(include_self_link=False, transform_hrefs=False)
        items.append(document)
    return items


@pytest.mark.slow
def test_workflow_acquires_over_http(tmp_path: Path, repo_root, serve, run_snakemake) -> None:
    """The acquire rules with the real source kinds (worldcover, stac) against 127.0.0.1."""
    bucket = make_demo_bucket(
        tmp_path / "bucket", WORKFLOW_AREAS, ("2024-01-01", "2024-03-31"), n_dates=2, seed=42
    )
    workdir = tmp_path / "work"
    workdir.mkdir()
    with serve(bucket) as server:
        server.add_items("sentinel-2-l2a", published_items(bucket, server))
        config = yaml.safe_load((repo_root / "config" / "config.yaml").read_text())
        config.update(
            areas=WORKFLOW_AREAS,
            holdout=["delta"],
            imagery={
                "kind": "stac",
                "root": server.url(),
                "collection": "sentinel-2-l2a",
                "dates": ["2024-01-01", "2024-03-31"],
                "max_cloud": 90,
                "max_items": 2,
                "bands": ["B02", "B03", "B04", "B08", "B11"],
            },
            labels={"kind": "worldcover", "root": server.url(), "version": "v200"},
            patches={"size": 32, "stride": 32, "min_valid": 0.3},
        )
        (workdir / "config.yaml").write_text(yaml.safe_dump(config))
        targets = (f"resources/raw/{area}/{kind}.tif" for area in WORKFLOW_AREAS for kind in KINDS)
        run = run_snakemake(workdir, *targets, timeout=600)
        assert run.returncode == 0, run.stderr[-4000:]
        tile_requests = [path for _, path, _ in server.requests if path.startswith("v200/")]
        band_requests = [path for _, path, _ in server.requests if path.endswith("B11.tif")]
    assert not (workdir / "resources" / "demo-bucket").exists()  # nothing read locally
    assert tile_requests and band_requests and any(p == "search" for _, p, _ in server.requests)
    for area in WORKFLOW_AREAS:
        with rasterio.open(workdir / f"resources/raw/{area}/labels.tif") as ds:
            assert server.url() in ds.tags()["source"]
        with rasterio.open(workdir / f"resources/raw/{area}/imagery.tif") as ds:
            assert ds.tags()["source"].startswith(f"STAC API {server.url()}")
