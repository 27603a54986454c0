"""Map clean-up: a minimum mapping unit, so that no class region smaller than it remains.

:func:`sieve_values` is rasterio's sieve (GDAL's ``GDALSieveFilter``: each connected
region of one value smaller than the unit takes the value of its largest neighbour)
with nodata kept out of it; :func:`sieve_map` applies it to a map COG. The whole map is
read at once: a region may span any window, so a windowed sieve would not be exact (a
map is one byte per pixel, a tenth of its float32 image; the aligned image, not the
map, is what bounds the mapping's memory).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np
import rasterio
from rasterio.features import sieve

from landcover.errors import ConfigError
from landcover.io import atomic_path, open_raster, to_cog
from landcover.mapping.legend import legend_paths

log = logging.getLogger(__name__)


def sieve_values(values: np.ndarray, nodata: int | None, size: int) -> np.ndarray:
    """Regions of fewer than ``size`` pixels (4-connected) merged into their largest neighbour.

    Nodata pixels are neither changed nor grown into: a speck next to nodata only merges
    with valid neighbours.
    """
    if size < 2:
        return values.copy()
    valid = values != nodata if nodata is not None else np.ones(values.shape, dtype=bool)
    cleaned = sieve(values, size=size, mask=valid, connectivity=4)
    return np.where(valid, cleaned, values).astype(values.dtype)


def sieve_map(map_path: str | Path, out: str | Path, size: int) -> None:
    """Write ``map_path`` cleaned to a minimum mapping unit of ``size`` pixels, as a COG.

    Profile, colour table, band description and tags are kept; the tag
    ``min_mapping_unit`` records the unit.

    Raises:
        ConfigError: a unit below 1 pixel.
        DataError: an unreadable map (named).

    """
    if size < 1:
        raise ConfigError(
            f"predict.min_mapping_unit: got {size}; use a number of pixels >= 1 (0 turns "
            "the cleaned maps off)."
        )
    with open_raster(map_path, "map") as src:
        values = src.read(1)
        cleaned = sieve_values(values, src.nodata, size)
        profile, colours, tags = src.profile, src.colormap(1), src.tags()
        description = src.descriptions[0]
    log.info("%s: %d px changed by a %d px unit", map_path, int((cleaned != values).sum()), size)
    with tempfile.TemporaryDirectory(dir=Path(out).parent) as work:
        tmp = Path(work) / "cleaned.tif"
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write_colormap(1, colours)
            dst.write(cleaned, 1)
            dst.set_band_description(1, description)
            dst.update_tags(**tags, min_mapping_unit=str(size))
        with atomic_path(out) as final:
            to_cog(tmp, final, resampling="mode")
            copy_legend(map_path, out)  # before the map lands: its presence says complete


def copy_legend(map_path: str | Path, out: str | Path) -> None:
    """Copy a map's class names for QGIS and GDAL (``.qml``, ``.tif.aux.xml``) to ``out``'s.

    The cleaned map holds the same classes and values; a map without them (made before
    they were written) passes none on.
    """
    for source, target in zip(legend_paths(map_path), legend_paths(out), strict=True):
        if source.exists():
            shutil.copyfile(source, target)
