"""ESA WorldCover labels: the public bucket's layout, tiles over a bbox, label windows.

Only the window of each 3-degree tile that covers the bbox is read (mosaicked across tile
borders on the tiles' common pixel grid). A tile is skipped only when it does not exist
(no file, or HTTP 404: no tile over open ocean); any other failure is an error.

With ``labels.min_quality`` the tile's InputQuality layer (3 bands at 60 m: Sentinel-1
looks, Sentinel-2 looks, percentage of invalid Sentinel-2 looks) is read over the same
window (nearest onto the label pixels) and labels that WorldCover itself saw poorly are
set to nodata (:func:`poor_quality`, :func:`mask_labels`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT

from landcover.errors import ConfigError, DataError, SourceError
from landcover.grid import BBox, worldcover_tiles
from landcover.sources.http import (
    HttpSettings,
    exists,
    gdal_options,
    gdal_path,
    gdal_read,
    join_path,
    url_of,
)
from landcover.sources.windows import (
    LABEL_MARGIN,
    LabelWindow,
    read_label_window,
    require_crs,
    write_labels,
)

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


def quality_paths(map_path: str) -> list[str]:
    """Where the InputQuality tile of a map tile may be, first choice first.

    Beside the map (``.../map/..._InputQuality.tif``, the layout of the ESA download
    scripts), then in a sibling ``input_quality`` folder (Planetary Computer's layout).

    >>> quality_paths("https://b.org/v200/2021/map/ESA_WorldCover_10m_2021_v200_N00E006_Map.tif")[0]
    'https://b.org/v200/2021/map/ESA_WorldCover_10m_2021_v200_N00E006_InputQuality.tif'
    """
    folder, _, name = map_path.rpartition("/")
    name = name.removesuffix("_Map.tif") + "_InputQuality.tif"
    parent = folder.rpartition("/")[0]
    return [f"{folder}/{name}", f"{parent}/input_quality/{name}"]


@dataclass(frozen=True)
class QualityMask:
    """The ``labels.min_quality`` thresholds of the InputQuality layer.

    Attributes:
        max_invalid_percent: labels where more than this percentage of the Sentinel-2
            looks were invalid (cloud, shadow) are dropped.
        min_s2_looks: labels with fewer Sentinel-2 looks than this are dropped.

    """

    max_invalid_percent: float = 80.0
    min_s2_looks: int = 1

    @classmethod
    def from_config(cls, value: Mapping[str, Any] | None) -> QualityMask | None:
        """The mask of a ``labels.min_quality`` value (None: off).

        Raises:
            ConfigError: naming the key when a threshold is out of range.

        """
        if value is None:
            return None
        mask = cls(**{k: v for k, v in value.items() if k in cls.__dataclass_fields__})
        if not 0 <= mask.max_invalid_percent <= 100 or mask.min_s2_looks < 0:
            raise ConfigError(
                f"labels.min_quality {dict(value)} is out of range: max_invalid_percent is "
                "0..100 and min_s2_looks >= 0. Fix: e.g. {max_invalid_percent: 80, "
                "min_s2_looks: 1}, or null to keep every label."
            )
        return mask

    def as_tag(self) -> str:
        """The thresholds as JSON, for the labels' tags."""
        return json.dumps(
            {"max_invalid_percent": self.max_invalid_percent, "min_s2_looks": self.min_s2_looks}
        )


QUALITY_NODATA = -1
"""Nodata of the InputQuality bands (pixels the classifier did not process, e.g. open sea)."""


def poor_quality(
    s2_looks: np.ndarray, invalid_percent: np.ndarray, mask: QualityMask
) -> np.ndarray:
    """Where WorldCover saw a pixel poorly: too few Sentinel-2 looks or too many invalid.

    A pixel without quality (nodata -1, e.g. open sea mapped as water) is not poor: its
    label is kept.
    """
    known = (s2_looks != QUALITY_NODATA) & (invalid_percent != QUALITY_NODATA)
    poor = (s2_looks < mask.min_s2_looks) | (invalid_percent > mask.max_invalid_percent)
    return known & poor


def mask_labels(codes: np.ndarray, poor: np.ndarray, nodata: float) -> tuple[np.ndarray, int]:
    """Set the labels where ``poor`` to nodata; return them and how many labels were removed."""
    removed = poor & (codes != nodata)
    return np.where(removed, np.asarray(nodata, codes.dtype), codes), int(removed.sum())


def read_quality_window(path: str, window: LabelWindow) -> tuple[np.ndarray, np.ndarray]:
    """Read the Sentinel-2 looks and invalid percentage (bands 2, 3) onto a label window.

    Nearest resampling: on the tiles' common grid each 60 m quality pixel covers 6 x 6
    label pixels exactly. Pixels outside the file are nodata (-1).

    Raises:
        DataError: when the file has fewer than 3 bands or no CRS.
        RasterioError: when GDAL cannot open or read the file (see :func:`gdal_read`).

    """
    height, width = window.codes.shape
    with rasterio.open(path) as src:
        if src.count < 3:
            raise DataError(
                f"'{url_of(path)}' has {src.count} band(s); a WorldCover InputQuality tile has 3 "
                "(S1 looks, S2 looks, invalid S2 %). Fix: use the official InputQuality tile."
            )
        require_crs(src, "WorldCover InputQuality")
        with WarpedVRT(
            src,
            crs=window.crs,
            transform=window.transform,
            width=width,
            height=height,
            resampling=Resampling.nearest,
            src_nodata=src.nodata if src.nodata is not None else QUALITY_NODATA,
            nodata=QUALITY_NODATA,
        ) as vrt:
            looks, invalid = vrt.read((2, 3))
    return looks, invalid


def acquire_labels(
    area: str,
    bbox: BBox,
    *,
    root: str | Path | None,
    version: str,
    out: str | Path,
    min_quality: Mapping[str, Any] | None = None,
) -> Path:
    """Write an area's WorldCover codes: the window of each tile over its bbox.

    Args:
        area: area id (for messages and tags).
        bbox: (west, south, east, north) in degrees, checked.
        root: the WorldCover bucket URL or a local mirror in the public layout (default
            the public bucket).
        version: WorldCover release, ``"v100"`` (2020) or ``"v200"`` (2021).
        out: output GeoTIFF: uint8 codes on the tiles' pixel grid, colour table kept.
        min_quality: ``labels.min_quality`` (None: every label is kept); see
            :class:`QualityMask`.

    Raises:
        SourceError: when no tile exists over the bbox, or a tile stays unreachable
            (only HTTP 404 means "no WorldCover tile here"; other failures are errors),
            or, with ``min_quality``, a map tile has no InputQuality tile.
        DataError: when a file is corrupt or a code does not fit in uint8.

    """
    return read_worldcover(
        area,
        bbox,
        root or WORLDCOVER_URL,
        version,
        out,
        kind="worldcover",
        min_quality=min_quality,
    )


def read_worldcover(
    area: str,
    bbox: BBox,
    root: str | Path,
    version: str,
    out: str | Path,
    kind: str,
    min_quality: Mapping[str, Any] | None = None,
) -> Path:
    """Mosaic the tiles' windows over ``bbox`` from a bucket in the public layout into ``out``.

    ``kind`` is the source kind that reads the bucket (``worldcover`` or ``demo``), for
    the fix a missing tile suggests and the output's tags. With ``min_quality`` the
    labels WorldCover saw poorly are set to nodata; the tags ``quality_source``,
    ``min_quality`` and ``quality_removed`` (a pixel count) say so.
    """
    mask = QualityMask.from_config(min_quality)
    settings = HttpSettings.from_env()
    with rasterio.Env(**gdal_options(settings)):
        windows, urls = _worldcover_windows(area, bbox, root, version, kind, LABEL_MARGIN, settings)
        if mask is not None:
            windows, quality_tags = _mask_poor_quality(area, windows, urls, mask, settings)
    year = WORLDCOVER_YEARS[version]
    tags = {
        "source": json.dumps(urls),
        "version": version,
        "year": str(year),
        "doi": WORLDCOVER_DOIS[version],
        "licence": WORLDCOVER_LICENCE.format(year=year),
    }
    if mask is not None:
        tags |= quality_tags
    return write_labels(area, bbox, windows, urls, tags, kind, out)


def _mask_poor_quality(
    area: str,
    windows: Sequence[LabelWindow],
    urls: Sequence[str],
    mask: QualityMask,
    settings: HttpSettings,
) -> tuple[list[LabelWindow], dict[str, str]]:
    """Set each tile window's poorly seen labels to nodata; return the windows and tags.

    Raises:
        SourceError: naming the area and tile when a map tile has no InputQuality tile.

    """
    masked, sources, removed = [], [], 0
    for window, url in zip(windows, urls, strict=True):
        path = _find_quality(area, url, settings)
        looks, invalid = gdal_read(
            gdal_path(path),
            f"WorldCover InputQuality tile (area '{area}')",
            partial(read_quality_window, gdal_path(path), window),
            settings,
        )
        nodata = window.nodata if window.nodata is not None else 0
        codes, count = mask_labels(window.codes, poor_quality(looks, invalid, mask), nodata)
        masked.append(replace(window, codes=codes))
        sources.append(path)
        removed += count
    total = sum(int((w.codes != (w.nodata if w.nodata is not None else 0)).sum()) for w in windows)
    logger.info(
        "area %s: label quality mask %s removed %d of %d label pixels (%.1f%%)",
        area,
        mask.as_tag(),
        removed,
        total,
        100 * removed / max(total, 1),
    )
    tags = {
        "quality_source": json.dumps(sources),
        "min_quality": mask.as_tag(),
        "quality_removed": str(removed),
    }
    return masked, tags


def _find_quality(area: str, map_path: str, settings: HttpSettings) -> str:
    """The InputQuality tile of a map tile (see :func:`quality_paths`).

    Raises:
        SourceError: naming the area, the map tile and the paths tried, with the fix.

    """
    candidates = quality_paths(map_path)
    for path in candidates:
        if exists(path, f"WorldCover InputQuality tile (area '{area}')", settings):
            return path
    raise SourceError(
        f"Area '{area}': labels.min_quality is set but the map tile {map_path} has no "
        f"InputQuality tile; looked for {candidates}. Fix: put the InputQuality tiles "
        "beside the map tiles in labels.root, or set labels.min_quality to null."
    )


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
