"""The source registry: kinds looked up in one place, each given the settings it names."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from landcover import sources
from landcover.errors import ConfigError
from landcover.sources import stac, worldcover

BBOX = (-16.52, 14.98, -16.48, 15.02)


def test_unknown_kind_names_the_key_and_the_kinds():
    with pytest.raises(
        ConfigError, match=r"labels\.kind 'osm' is unknown; use one of \['chips', 'demo'"
    ):
        sources.source_kind("labels", "osm")


@pytest.mark.parametrize(
    ("section", "source", "expected"),
    [
        ("imagery", {"kind": "demo", "root": "ignored"}, "bucket"),
        ("labels", {"kind": "demo", "root": None}, "bucket"),
        ("imagery", {"kind": "stac", "root": None}, stac.EARTH_SEARCH_URL),
        ("imagery", {"kind": "stac", "root": "http://127.0.0.1:1/v1"}, "http://127.0.0.1:1/v1"),
        ("labels", {"kind": "worldcover", "root": None}, worldcover.WORLDCOVER_URL),
        ("labels", {"kind": "local", "root": "mine.tif"}, "mine.tif"),
    ],
)
def test_source_root(section, source, expected):
    assert sources.source_root(section, source, "bucket") == expected


def test_demo_bucket_is_needed_only_by_demo_sources():
    demo = {"imagery": {"kind": "demo"}, "labels": {"kind": "worldcover"}}
    real = {"imagery": {"kind": "stac"}, "labels": {"kind": "worldcover"}}
    assert sources.needs_demo_bucket(demo) and not sources.needs_demo_bucket(real)


def test_local_source_without_root_is_a_config_error():
    with pytest.raises(ConfigError, match=r"labels\.root: kind 'local' needs"):
        sources.check_source("labels", {"kind": "local", "root": None})


def test_a_new_kind_is_one_module_and_one_entry(monkeypatch, tmp_path):
    """The façade calls the kind's function with the keys its signature names, no others."""
    calls = []

    def acquire_labels(area: str, bbox: tuple, *, root: str, year: int, out: Path) -> Path:
        calls.append({"area": area, "bbox": bbox, "root": root, "year": year, "out": out})
        return out

    monkeypatch.setitem(
        sources.LABELS, "mine", types.SimpleNamespace(acquire_labels=acquire_labels)
    )
    out = tmp_path / "labels.tif"
    settings = {"root": "r", "year": 2021, "version": "v200", "out": out}  # version: not its key
    assert sources.acquire_labels("delta", list(BBOX), "mine", **settings) == out
    assert calls == [{"area": "delta", "bbox": BBOX, "root": "r", "year": 2021, "out": out}]


def test_bad_bbox_is_checked_before_the_kind_runs(monkeypatch):
    def acquire_labels(area, bbox, *, out):  # pragma: no cover (never reached)
        raise AssertionError("called")

    monkeypatch.setitem(
        sources.LABELS, "mine", types.SimpleNamespace(acquire_labels=acquire_labels)
    )
    with pytest.raises(ConfigError, match="delta"):
        sources.acquire_labels("delta", [10, 0, 5, 1], "mine", out="x.tif")
