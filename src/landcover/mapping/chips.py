"""One map per chip (kind chips): the area's map cut back into its chips, on their footprints.

A chip area is mapped as a mosaic of its chips laid side by side
(:mod:`landcover.sources.chips`); users of chip collections want a predicted mask per
chip, named by its id, where the chip lies. :func:`split_map` cuts the map at the
mosaic's cells and writes ``{id}.tif`` for each chip: on the chip's own CRS and
transform when the chip was georeferenced (tag ``chip_footprints``), on its pixel grid
otherwise, with the map's pixel values, nodata, colour table and tags.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import rasterio
from affine import Affine
from rasterio.crs import CRS

from landcover.errors import DataError
from landcover.io import atomic_path, open_raster

log = logging.getLogger(__name__)

__all__ = ["chip_window", "split_map"]


def chip_window(
    tags: Mapping[str, str], window: int, overlap: int, multiple: int
) -> tuple[int, int]:
    """The mapping window and overlap of an image: for a chip mosaic, each chip on its own.

    Chips laid side by side are unrelated images, so a window spanning two would give
    each chip context from its neighbour: a mosaic of square chips whose side is a
    multiple of the model's ``multiple`` is mapped with ``window`` = the side and no
    overlap. Other images, and chips that cannot be windows, keep the configured values
    (the latter with a warning).
    """
    if "chip_size" not in tags:
        return window, overlap
    height, width = (int(v) for v in json.loads(tags["chip_size"]))
    if height != width or height % multiple:
        log.warning(
            "chips of %d x %d px cannot each be one window (square, a multiple of %d px): "
            "mapping with windows of %d px overlapping by %d, which may span two chips",
            width, height, multiple, window, overlap,
        )  # fmt: skip
        return window, overlap
    if (window, overlap) != (height, 0):
        log.info("chip mosaic: each chip mapped on its own (window %d px, no overlap)", height)
    return height, 0


def _profile(src: rasterio.DatasetReader, footprint: list | None, shape: tuple[int, int]) -> dict:
    """A small single-band GeoTIFF (striped: chips are smaller than a tile)."""
    crs, transform = (
        (CRS.from_user_input(footprint[0]), Affine(*footprint[1]))
        if footprint
        else (None, Affine.identity())
    )
    return {
        "driver": "GTiff",
        "width": shape[1],
        "height": shape[0],
        "count": 1,
        "dtype": src.dtypes[0],
        "nodata": src.nodata,
        "crs": crs,
        "transform": transform,
        "compress": "deflate",
    }


def split_map(map_path: str | Path, image: str | Path, out_dir: str | Path) -> int:
    """Write each chip's part of a chip area's map as ``out_dir/{id}.tif``.

    Args:
        map_path: the area's class map (a mosaic of its chips).
        image: the area's aligned image, whose tags hold the chips (``chips``,
            ``chip_size``, and ``chip_footprints`` for georeferenced chips).
        out_dir: the folder to create; it appears whole or not at all.

    Returns:
        The number of chips written.

    Raises:
        DataError: the image is not a chip mosaic, or the map is not on its grid.

    """
    with open_raster(image, "aligned image") as img:
        tags, shape = img.tags(), (img.height, img.width)
    if "chips" not in tags:
        raise DataError(
            f"'{image}' is not a mosaic of chips (no 'chips' tag): per-chip maps are for "
            "kind chips; rerun `align_area` for the area."
        )
    # here: the scorer's imports (chip_window) need not load the sources
    from landcover.evaluation.proportions import cells

    chips, size = json.loads(tags["chips"]), json.loads(tags["chip_size"])
    footprints = json.loads(tags.get("chip_footprints", "{}"))
    final = Path(out_dir)
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        with open_raster(map_path, "map") as src:
            if (src.height, src.width) != shape:
                raise DataError(
                    f"Map '{map_path}' is {src.width} x {src.height} px but its image "
                    f"'{image}' is {shape[1]} x {shape[0]} px: rerun `predict_area`."
                )
            colours, map_tags = src.colormap(1), src.tags()
            for chip, path, cell in cells(chips, size):
                profile = _profile(src, footprints.get(chip), (int(size[0]), int(size[1])))
                with (
                    atomic_path(work / f"{chip}.tif") as tmp,
                    rasterio.open(tmp, "w", **profile) as dst,
                ):
                    dst.write(src.read(1, window=cell), 1)
                    dst.write_colormap(1, colours)
                    dst.update_tags(**map_tags, chip=chip, chip_file=path)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(work, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("wrote %d chip maps into %s", len(chips), final)
    return len(chips)
