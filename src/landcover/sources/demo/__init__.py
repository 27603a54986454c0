"""The embedded demo source: a synthetic, deterministic bucket laid out like the public ones.

As a source kind (``kind: demo`` for imagery and labels) it reads the bucket that rule
``make_demo_bucket`` generates (:func:`make_demo_bucket`) with the real readers: the
Sentinel-2 COGs through its static STAC catalog (:func:`~landcover.sources.stac.composite_catalog`),
the labels as WorldCover tiles (:func:`~landcover.sources.worldcover.read_worldcover`).
The generator is split along its own layers: :mod:`.landscapes` (land cover),
:mod:`.radiometry` (observations) and :mod:`.bucket` (the writers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from landcover.errors import ConfigError
from landcover.grid import BBox
from landcover.sources.demo.bucket import make_demo_bucket
from landcover.sources.stac import check_imagery, composite_catalog, inputs_imagery
from landcover.sources.worldcover import read_worldcover

__all__ = [
    "acquire_imagery",
    "acquire_labels",
    "check_imagery",
    "inputs_imagery",
    "make_demo_bucket",
    "needs_bucket",
]

needs_bucket = True
"""The source reads the generated bucket, so rule ``make_demo_bucket`` runs first."""


def acquire_imagery(
    area: str,
    bbox: BBox,
    *,
    root: str | Path,
    collection: str,
    dates: Sequence[str],
    max_cloud: float,
    max_items: int,
    bands: Sequence[str],
    resolution: float,
    out: str | Path,
    items: str | None,
    min_clear: float,
) -> Path:
    """The area's Sentinel-2 composite from the bucket's static STAC catalog (``root``)."""
    return composite_catalog(
        area,
        bbox,
        root=_bucket(area, root, "imagery"),
        collection=collection,
        dates=dates,
        max_cloud=max_cloud,
        max_items=max_items,
        bands=bands,
        resolution=resolution,
        out=out,
        items=items,
        min_clear=min_clear,
    )


def acquire_labels(
    area: str,
    bbox: BBox,
    *,
    root: str | Path,
    version: str,
    out: str | Path,
    min_quality: Mapping[str, Any] | None = None,
) -> Path:
    """The area's label codes from the bucket's WorldCover tiles (``root``).

    With ``min_quality`` labels the bucket's InputQuality tiles rate poorly are ignored.
    """
    return read_worldcover(
        area,
        bbox,
        _bucket(area, root, "labels"),
        version,
        out,
        kind="demo",
        min_quality=min_quality,
    )


def _bucket(area: str, root: str | Path | None, what: str) -> str | Path:
    if not root:
        raise ConfigError(
            f"Area '{area}': {what}.kind 'demo' needs the demo bucket folder as root (demo.root)."
        )
    return root
