"""Shared fixtures of the suite: tests get them as fixtures, never by importing this file.

The repository and its configs (``repo_root``, ``demo_config``, ``defaults``); the tiny
workflow config and the `snakemake` command (``tiny_config``, ``run_snakemake``,
``job_counts``); the loopback HTTP server (``serve``: ``tests/http_server.py``, a real
HTTP server on 127.0.0.1, stays a module of its own); a tiny synthetic patch store
(``make_patch_store``, ``patch_store``).

A test that runs the `snakemake` command (through ``run_snakemake``, directly or through
another fixture) must be marked ``slow``: collection stops otherwise, so that
``pytest -m "not slow"`` never starts the workflow.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import yaml

from landcover.config import validated
from landcover.prepare.store import stores, window_image, window_labels

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
if str(TESTS) not in sys.path:  # tests/http_server.py, for any import mode
    sys.path.insert(0, str(TESTS))

import http_server  # noqa: E402

SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


# --------------------------------------------------------------------------- markers


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Stop where a test runs the `snakemake` command but is not marked slow."""
    unmarked = [
        item.nodeid
        for item in items
        if "run_snakemake" in getattr(item, "fixturenames", ())
        and item.get_closest_marker("slow") is None
    ]
    if unmarked:
        raise pytest.UsageError(
            "These tests run the snakemake command but are not marked "
            f"@pytest.mark.slow: {unmarked}"
        )


# --------------------------------------------------------------------------- the repository


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture
def demo_config() -> dict:
    """config/config.yaml, validated (the schema's defaults filled in)."""
    return validated(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()))


@pytest.fixture(scope="session")
def defaults() -> dict:
    """Every section with the schema's defaults (the library keeps none of its own)."""
    return validated({"areas": {"a": {"bbox": [0.0, 0.0, 0.1, 0.1]}}})


# --------------------------------------------------------------------------- the workflow

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
    # a 2 M-parameter timm encoder, built without downloading weights
    "model": {"arch": "unet", "encoder": "tu-mobilenetv3_small_050"},
    # the network and the baseline (the demo's ensemble is tested on its own)
    "experiments": {"unet": {}, "pixel": {"model": {"kind": "pixel"}}},
    "training": {"epochs": 2, "batch_size": 4, "patience": 0},
    "predict": {"window": 64, "overlap": 16, "batch_size": 4},
}
"""Top-level sections that replace the demo config's: three tiny areas, a tiny model."""


@pytest.fixture(scope="session")
def tiny_config() -> Callable[..., dict]:
    """A factory of the tiny workflow config (a fresh dict per call).

    ``tiny_config(**sections)``: config/config.yaml as written (not validated), its
    top-level sections replaced by the tiny ones (three areas of about 1.3 km, a
    2 M-parameter model, two epochs), then by ``sections``.
    """

    def make(**sections: Any) -> dict:
        config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
        config.update(copy.deepcopy(TINY))
        config.update(copy.deepcopy(sections))
        return config

    return make


@pytest.fixture(scope="session")
def run_snakemake() -> Callable[..., subprocess.CompletedProcess]:
    """The `snakemake` command, run from the repository root; returns the finished process.

    ``run_snakemake(workdir, *args, config="config.yaml", cores=2, env=None, timeout=900)``
    runs the Snakefile in ``workdir`` (``--directory``) with ``--configfile`` ``config``
    (a path relative to ``workdir``, or absolute). ``workdir=None`` runs plain
    ``snakemake *args`` in the repository (lint, profiles). ``env``: variables set on
    top of this process's environment (``None`` removes one). Tests that use this
    fixture must be marked ``slow``.
    """

    def run(
        workdir: Path | None,
        *args: str,
        config: str | Path = "config.yaml",
        cores: int | None = 2,
        env: Mapping[str, str | None] | None = None,
        timeout: float = 900,
    ) -> subprocess.CompletedProcess:
        command = [SNAKEMAKE]
        if workdir is not None:
            command += [
                "--snakefile",
                str(ROOT / "Snakefile"),
                "--directory",
                str(workdir),
                "--configfile",
                str(Path(workdir) / config),
            ]
        if cores is not None:
            command += ["--cores", str(cores)]
        environ = dict(os.environ)
        for name, value in (env or {}).items():
            if value is None:
                environ.pop(name, None)
            else:
                environ[name] = value
        return subprocess.run(
            [*command, *args],
            cwd=ROOT,
            env=environ,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


@pytest.fixture(scope="session")
def job_counts() -> Callable[[str], dict[str, int]]:
    """``job_counts(stdout)``: rule -> jobs, from the "Job stats" table of a dry run."""

    def count(stdout: str) -> dict[str, int]:
        block = stdout.split("Job stats:")[1].split("total")[0]
        rows = (line.split() for line in block.splitlines())
        return {row[0]: int(row[1]) for row in rows if len(row) == 2 and row[1].isdigit()}

    return count


# --------------------------------------------------------------------------- HTTP

PROXY_VARIABLES = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy")


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Callable[..., AbstractContextManager[Any]]:
    """``with serve(folder) as server:`` the loopback HTTP server of tests/http_server.py.

    The server gives files with byte ranges, a minimal STAC API (``server.add_items``),
    request accounting and injected faults (``server.fail``). For the test's duration no
    proxy applies to 127.0.0.1 and GDAL retries quickly (3 tries, 0.01 s apart, 10 s
    timeout); subprocesses inherit the same.
    """
    monkeypatch.setenv("GDAL_HTTP_MAX_RETRY", "3")
    monkeypatch.setenv("GDAL_HTTP_RETRY_DELAY", "0.01")
    monkeypatch.setenv("GDAL_HTTP_TIMEOUT", "10")
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return http_server.serve


# --------------------------------------------------------------------------- patches

PATCH_CLASSES = ["tree", "water", "built_up"]
PATCH_BANDS = ["B02", "B03", "B04", "B08"]


def _write_patch_store(
    root: Path,
    areas: dict[str, dict[str, int]] | None = None,
    size: int = 32,
    bands: list[str] | None = None,
    classes: list[str] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Write ``{root}/{area}/images.npy``, ``labels.npy``, ``index.parquet``, class weights."""
    areas = areas or {"a": {"train": 12, "val": 4}, "b": {"train": 12, "val": 4}}
    bands = bands or PATCH_BANDS
    classes = classes or PATCH_CLASSES
    rng = np.random.default_rng(seed)
    k, c = len(classes), len(bands)
    signature = rng.uniform(0.05, 0.5, size=(k, c)).astype(np.float32)
    tables = []
    for area, splits in areas.items():
        n = sum(splits.values())
        # labels: a few rectangles of classes on a background class
        labels = np.zeros((n, size, size), np.uint8)
        for i in range(n):
            labels[i] = rng.integers(k)
            for _ in range(3):
                r, q = rng.integers(0, size - 4, 2)
                labels[i, r : r + size // 3, q : q + size // 3] = rng.integers(k)
        labels[:, :2, :2] = 255  # a few ignored pixels
        images = signature[labels.clip(0, k - 1)].transpose(0, 3, 1, 2).copy()
        images += rng.normal(0, 0.03, images.shape).astype(np.float32)
        images[:, :, :2, :2] = np.nan  # invalid where ignored
        folder = root / area
        folder.mkdir(parents=True, exist_ok=True)
        # the area's store: patch i is the window at row 0, column i * size
        np.save(folder / "images.npy", images.transpose(2, 0, 3, 1).reshape(size, n * size, c))
        np.save(folder / "labels.npy", labels.transpose(1, 0, 2).reshape(size, n * size))
        split = [s for s, m in splits.items() for _ in range(m)]
        table = pd.DataFrame(
            {
                "area": area,
                "patch": np.arange(n),
                "row": 0,
                "col": np.arange(n) * size,
                "size": size,
                "valid_fraction": 1.0,
                "split": split,
                "block": 0,
                "crs": "EPSG:32628",
            }
        )
        for j, name in enumerate(classes):
            table[f"count_{name}"] = (labels == j).sum((1, 2)).astype(np.int64)
        tables.append(table)
    table = pd.concat(tables, ignore_index=True)
    geometry = shapely.box(table["col"], 0, table["col"] + size, size)
    gpd.GeoDataFrame(table, geometry=geometry, crs="EPSG:4326").to_parquet(root / "index.parquet")
    train = table[table["split"] == "train"]
    counts = train[[f"count_{name}" for name in classes]].sum().to_numpy(np.float64)
    weights = (counts.sum() / np.maximum(counts, 1) / k).tolist()
    (root / "class_weights.json").write_text(
        json.dumps(
            {
                "method": "inverse_frequency",
                "classes": classes,
                "weights": weights,
                "counts": counts.tolist(),
                "absent": [],
            }
        )
    )
    names = list(areas)

    def read(area: str, count: int) -> tuple[np.ndarray, np.ndarray]:
        """The first ``count`` patches of ``area``: float32 (N, C, P, P), uint8 (N, P, P)."""
        images, labels = np.load(root / area / "images.npy"), np.load(root / area / "labels.npy")
        return (
            np.stack([window_image(images, 0, i * size, size) for i in range(count)]),
            np.stack([window_labels(labels, 0, i * size, size) for i in range(count)]),
        )

    return {
        "read": read,
        "patches_dir": root,
        "index": root / "index.parquet",
        "class_weights": root / "class_weights.json",
        "areas": names,
        "bands": list(bands),
        "classes": list(classes),
        "stores": stores(
            names,
            [root / a / "images.npy" for a in names],
            [root / a / "labels.npy" for a in names],
        ),
    }


@pytest.fixture(scope="session")
def make_patch_store() -> Callable[..., dict[str, Any]]:
    """A factory of tiny synthetic patch stores (the layout of docs/contracts.md "Patches").

    ``make_patch_store(root, areas=None, size=32, bands=None, classes=None, seed=0)``
    writes ``{root}/{area}/images.npy``, ``labels.npy``, ``{root}/index.parquet`` and
    ``class_weights.json``. ``areas``: per area, how many patches of each split (default
    two areas of 12 train and 4 val patches); bands default to B02, B03, B04, B08 and
    classes to tree, water, built_up. Returns ``read(area, count)`` (the first patches of
    an area as stacks: images (N, C, P, P), labels (N, P, P)), the paths ``patches_dir``, ``index``,
    ``class_weights``; ``areas``, ``bands``, ``classes`` (names) and ``stores`` (area ->
    :class:`landcover.prepare.store.Store`).
    """
    return _write_patch_store


@pytest.fixture(scope="session")
def patch_store(
    make_patch_store: Callable[..., dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """One default patch store of 32 px patches, shared by the session: read it only."""
    return make_patch_store(tmp_path_factory.mktemp("patches"), size=32)
