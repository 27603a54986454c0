"""ESA WorldCover labels: the public bucket's layout, tiles over a bbox, label windows.

Only the window of each 3-degree tile that covers the bbox is read (mosaicked across tile
borders on the tiles' common pixel grid). A tile is skipped only when it does not exist
(no file, or HTTP 404: no tile over open ocean); any other failure is an error.
"""

from __future__ import annotations

import json
import logging
from functools import partial
from pathlib import Path

import rasterio

from landcover.errors import ConfigError, SourceError
from landcover.grid import BBox, worldcover_tiles
from landcover.sources.http import (
    HttpSettings,
    exists,
    gdal_options,
    gdal_path,
    gdal_read,
    join_path,
)
from landcover.sources.windows import LABEL_MARGIN, LabelWindow, read_label_window, write_labels

logger = logging.getLogger(__name__)


WORLDCOVER_URL = "https://esa-worldcover.s3.eu-central-1.amazonaws.com"
"""The public bucket of ESA WorldCover (no credentials needed)."""


DEFAULT_ROOT = WORLDCOVER_URL
"""Used when ``labels.root`` is null."""

WORLDCOVER_YEARS = {"v100": 2020, "v200": 2021}
"""WorldCover product version -> map year."""


WORLDCOVER_DOIS = {"v100": "10.5281/zenodo.5571936", "v200": "10.5281/zenodo.7254221"}
"""WorldCover product version -> DOI of the dataset."""


WORLDCOVER_LICENCE = (
    "CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/): © ESA WorldCover project {year} / "
    "Contains modified Copernicus Sentinel data ({year}) processed by ESA WorldCover consortium"
)


def worldcover_path(root: str | Path, version: str, tile: str) -> str:
    """Path (or URL) of a WorldCover map tile under ``root``, in the public layout.

    >>> worldcover_path("https://example.org", "v200", "N15W018")
    'https://example.org/v200/2021/map/ESA_WorldCover_10m_2021_v200_N15W018_Map.tif'

    Raises:
        ConfigError: when the version is not a known WorldCover release.

    """
    if version not in WORLDCOVER_YEARS:
        raise ConfigError(
            f"labels.version '{version}' is not a WorldCover release; use one of "
            f"{sorted(WORLDCOVER_YEARS)}."
        )
    year = WORLDCOVER_YEARS[version]
    name = f"ESA_WorldCover_10m_{year}_{version}_{tile}_Map.tif"
    return join_path(root, version, str(year), "map", name)


def acquire_labels(
    area: str, bbox: BBox, *, root: str | Path | None, version: str, out: str | Path
) -> Path:
    """Write an area's WorldCover codes: the window of each tile over its bbox.

    Args:
        area: area id (for messages and tags).
        bbox: (west, south, east, north) in degrees, checked.
        root: the WorldCover bucket URL or a local mirror in the public layout (default
            the public bucket).
        version: WorldCover release, ``"v100"`` (2020) or ``"v200"`` (2021).
        out: output GeoTIFF: uint8 codes on the tiles' pixel grid, colour table kept.

    Raises:
        SourceError: when no tile exists over the bbox, or a tile stays unreachable
            (only HTTP 404 means "no WorldCover tile here"; other failures are errors).
        DataError: when a file is corrupt or a code does not fit in uint8.

    """
    return read_worldcover(area, bbox, root or WORLDCOVER_URL, version, out, kind="worldcover")


def read_worldcover(
    area: str, bbox: BBox, root: str | Path, version: str, out: str | Path, kind: str
) -> Path:
    """Mosaic the tiles' windows over ``bbox`` from a bucket in the public layout into ``out``.

    ``kind`` is the source kind that reads the bucket (``worldcover`` or ``demo``), for
    the fix a missing tile suggests and the output's tags.
    """
    settings = HttpSettings.from_env()
    with rasterio.Env(**gdal_options(settings)):
        windows, urls = _worldcover_windows(area, bbox, root, version, kind, LABEL_MARGIN, settings)
    year = WORLDCOVER_YEARS[version]
    tags = {
        "source": json.dumps(urls),
        "version": version,
        "year": str(year),
        "doi": WORLDCOVER_DOIS[version],
        "licence": WORLDCOVER_LICENCE.format(year=year),
    }
    return write_labels(area, bbox, windows, urls, tags, kind, out)


def _worldcover_windows(
    area: str,
    bbox: BBox,
    root: str | Path,
    version: str,
    kind: str,
    margin: int,
    settings: HttpSettings,
) -> tuple[list[LabelWindow], list[str]]:
    """Read the window of each WorldCover tile over a bbox; skip tiles that do not exist.

    A tile does not exist when its file is absent or its URL answers HTTP 404 (no tile
    over open ocean); any other failure is an error.

    Raises:
        SourceError: when no tile exists, or a tile stays unreachable.

    """
    paths = [(tile, worldcover_path(root, version, tile)) for tile, _ in worldcover_tiles(bbox)]
    windows, urls = [], []
    for tile, path in paths:
        what = f"WorldCover tile {tile} (area '{area}')"
        if not exists(path, what, settings):
            logger.warning(
                "area %s: WorldCover tile %s not found at %s (no tile over open ocean); skipped",
                area,
                tile,
                path,
            )
            continue
        logger.info("area %s: reading the window of %s from %s", area, tile, path)
        source = gdal_path(path)
        windows.append(
            gdal_read(
                source,
                what,
                partial(read_label_window, source, bbox, margin),
                settings,
            )
        )
        urls.append(path)
    if not windows:
        fix = (
            "rebuild the demo bucket (snakemake make_demo_bucket) or set labels.root to it"
            if kind == "demo"
            else "check labels.root and labels.version; WorldCover has no tiles over open "
            "ocean, so move the area's bbox onto land"
        )
        raise SourceError(
            f"Area '{area}': no WorldCover {version} tile found over bbox {list(bbox)}; "
            f"looked for {[p for _, p in paths]}. Fix: {fix}."
        )
    return windows, urls
