"""Folders of image and mask chips (``kind: chips``): each area's chips laid side by side.

For labelled chip collections (challenge datasets, PNG or GeoTIFF tiles of any band
count and type): ``imagery.root`` is a file pattern with ``{id}`` (the chip's id) and,
for several folders, ``{area}`` (e.g. ``data/{area}/images/{id}.png``); ``labels.root``
the masks' pattern (e.g. ``data/{area}/masks/{id}_mask.png``), paired by id. An area
(``window: all``) is all the chips its pattern finds, sorted by id and laid in a grid of
equal cells without gaps: a mosaic on its own pixel grid (no CRS), so that the rest of
the chain (tiling, split, training, mapping, scores) reads chips as it reads any scene.
With ``patches.size`` = ``patches.stride`` dividing the chip size, every patch lies in
one chip; ``predict.overlap: 0`` with ``predict.window`` the chip size maps each chip on
its own. The mosaic's tags hold the chips in order (``chips``: id -> file) and the cell size
(``chip_size``); ``align_area`` pairs images and masks by them (:func:`check_pairs`).

Read with GDAL (GeoTIFF, PNG, JPEG...). Chips of unequal size, an image without a mask
(or a mask without an image), a mask whose shape differs from its image's, or chips of
different band counts or types: an error naming the files and the fix; a mask code that
is not in the class map fails in ``align_area`` as for any labels.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Sequence
from glob import escape, glob
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

from landcover.errors import ConfigError, DataError, SourceError
from landcover.io import atomic_path, gtiff_profile

log = logging.getLogger(__name__)

LABEL_NODATA = 65535
"""Code of the mosaic's empty cells in the labels (written as uint16, codes kept)."""

__all__ = [
    "acquire_imagery_window",
    "acquire_labels_window",
    "check_imagery",
    "check_labels",
    "check_pairs",
    "chip_at",
    "chip_ids",
    "layout",
]


def _check_root(section: str, source: dict) -> None:
    root = source.get("root")
    if not root or "{id}" not in str(root):
        raise ConfigError(
            f"{section}.root: kind 'chips' needs a file pattern with {{id}} (and {{area}} "
            f"for one folder per area), e.g. 'chips/{{area}}/images/{{id}}.png'; got {root!r}."
        )


def check_imagery(source: dict) -> None:
    """``imagery.root`` must be a pattern with ``{id}``."""
    _check_root("imagery", source)


def check_labels(source: dict) -> None:
    """``labels.root`` must be a pattern with ``{id}``."""
    _check_root("labels", source)


def chip_ids(pattern: str, area: str) -> dict[str, str]:
    """Chip id -> file of every file that ``pattern`` (``{id}``, ``{area}``) matches, by id.

    Raises:
        SourceError: no file matches (naming the pattern and the fix).

    """
    concrete = pattern.replace("{area}", area)
    head, _, tail = concrete.partition("{id}")
    regex = re.compile(re.escape(head) + r"(?P<id>.+)" + re.escape(tail) + r"\Z")
    files = {}
    for path in sorted(glob(escape(head) + "*" + escape(tail))):
        match = regex.match(path)
        if match:
            files[match["id"]] = path
    if not files:
        raise SourceError(
            f"Area '{area}': no chip matches '{concrete}'. Fix the root pattern ({{id}} "
            "stands for the chip's id, {area} for the area's name) or the area's name."
        )
    return dict(sorted(files.items()))


def layout(count: int) -> tuple[int, int]:
    """Rows and columns of the mosaic's grid of ``count`` chips (near square, pure)."""
    columns = max(1, math.ceil(math.sqrt(count)))
    return math.ceil(count / columns), columns


def _cell(index: int, columns: int, size: tuple[int, int]) -> tuple[int, int]:
    """Pixel offset (row, col) of chip ``index``'s cell."""
    return (index // columns) * size[0], (index % columns) * size[1]


def _chip_shapes(files: dict[str, str], area: str, what: str) -> tuple[tuple[int, int], int, str]:
    """The common (height, width), band count and type of the chips, or an error."""
    shapes = {}
    for chip, path in files.items():
        with rasterio.open(path) as src:
            shapes[chip] = ((src.height, src.width), src.count, src.dtypes[0])
    first = next(iter(shapes))
    for chip, shape in shapes.items():
        if shape != shapes[first]:
            raise DataError(
                f"Area '{area}': {what} chip '{files[chip]}' is {shape[0][1]} x {shape[0][0]} px "
                f"with {shape[1]} band(s) of {shape[2]}, but '{files[first]}' is "
                f"{shapes[first][0][1]} x {shapes[first][0][0]} px with {shapes[first][1]} "
                f"band(s) of {shapes[first][2]}. Chips of one area must be alike: resize or "
                "convert them, or put them in separate areas."
            )
    return shapes[first]


def _write_mosaic(
    files: dict[str, str],
    out: Path,
    bands: Sequence[int],
    dtype: str,
    nodata: float | None,
    tags: dict[str, str],
    scales: Sequence[tuple[float, float]] | None = None,
    descriptions: Sequence[str] | None = None,
) -> None:
    """Lay the chips in a grid of cells (sorted by id), one band of ``bands`` each."""
    with rasterio.open(next(iter(files.values()))) as src:
        size = (src.height, src.width)
    rows, columns = layout(len(files))
    shape = (rows * size[0], columns * size[1])
    profile = gtiff_profile(None, Affine.identity(), shape, len(bands), dtype, nodata)
    with rasterio.open(out, "w", **profile) as dst:
        if nodata is not None:  # the empty cells of the last row
            blank = np.full((len(bands), *size), nodata, dtype)
            for index in range(len(files), rows * columns):
                row, col = _cell(index, columns, size)
                dst.write(blank, window=rasterio.windows.Window(col, row, size[1], size[0]))
        footprints = {}
        for index, (chip, path) in enumerate(files.items()):
            row, col = _cell(index, columns, size)
            with rasterio.open(path) as src:
                data = src.read(list(bands)).astype(dtype)
                if src.crs:
                    footprints[chip] = [src.crs.to_string(), list(src.transform)[:6]]
            dst.write(data, window=rasterio.windows.Window(col, row, size[1], size[0]))
        if footprints:  # per-chip maps get them back (:func:`split_map`)
            tags = {**tags, "chip_footprints": json.dumps(footprints)}
        if scales is not None:
            dst.scales = [s for s, _ in scales]
            dst.offsets = [o for _, o in scales]
        for band, name in enumerate(descriptions or [], 1):
            dst.set_band_description(band, name)
        dst.update_tags(**tags, chips=json.dumps(files), chip_size=json.dumps(size))


def acquire_imagery_window(
    area: str,
    window: object,
    *,
    root: str,
    bands: Sequence[str],
    scale: float,
    offset: float,
    out: str | Path,
) -> Path:
    """Lay an area's image chips side by side (``resources/raw/{area}/imagery.tif``).

    Bands are matched as for local files (by description, in order without one); values
    keep their type, with ``scale`` / ``offset`` as each band's GDAL scale and offset.

    Raises:
        ConfigError: a window other than ``all``, or bands that cannot be matched.
        DataError: chips of unequal size, band count or type.
        SourceError: no chip found.

    """
    from landcover.sources.local import match_bands  # one band matcher for every kind

    _whole(area, window)
    files = chip_ids(root, area)
    _, count, dtype = _chip_shapes(files, area, "image")
    with rasterio.open(next(iter(files.values()))) as src:
        descriptions = list(src.descriptions)
    try:
        indexes = match_bands(descriptions, bands)
    except ValueError as err:
        raise ConfigError(
            f"Area '{area}': the bands of the image chips ({count} band(s), descriptions "
            f"{descriptions}) cannot be matched to imagery.bands {list(bands)}: {err}. Fix "
            "imagery.bands (one name per band of the chips, in order)."
        ) from None
    tags = {"source": root, "area": area, "kind": "chips", "items": "[]", "dates": "[]"}
    with atomic_path(out) as tmp:
        _write_mosaic(
            files,
            tmp,
            indexes,
            dtype,
            None,
            tags,
            scales=[(scale, offset)] * len(bands),
            descriptions=bands,
        )
    log.info("area '%s': %d image chips laid side by side", area, len(files))
    return Path(out)


def acquire_labels_window(area: str, window: object, *, root: str, out: str | Path) -> Path:
    """Lay an area's mask chips side by side, sorted by id, as uint16 codes.

    Images and masks are acquired apart; ``align_area`` pairs them (:func:`check_pairs`).

    Raises:
        DataError: masks of unequal size.
        SourceError: no mask found.

    """
    _whole(area, window)
    masks = chip_ids(root, area)
    _chip_shapes(masks, area, "mask")
    tags = {"source": root, "area": area, "kind": "chips"}
    with atomic_path(out) as tmp:
        _write_mosaic(masks, tmp, [1], "uint16", LABEL_NODATA, tags)
    log.info("area '%s': %d mask chips laid side by side", area, len(masks))
    return Path(out)


def check_pairs(area: str, image_tags: dict[str, str], mask_tags: dict[str, str]) -> None:
    """Each image chip has its mask and each mask its image, of the same size.

    Args:
        area: the area (for the message).
        image_tags: tags of the image mosaic (``chips``, ``chip_size``).
        mask_tags: tags of the mask mosaic.

    Raises:
        DataError: naming the unpaired or mismatched files and the fix.

    """
    images, masks = json.loads(image_tags["chips"]), json.loads(mask_tags["chips"])
    alone = [images[c] for c in images if c not in masks]
    orphans = [masks[c] for c in masks if c not in images]
    if alone or orphans:
        raise DataError(
            f"Area '{area}': image chips without a mask {alone[:5]} and masks without an "
            f"image {orphans[:5]} ({len(alone)} and {len(orphans)} in all). Images and masks "
            "are paired by the {id} of imagery.root and labels.root: fix the patterns, or "
            "add or remove the files."
        )
    image_size, mask_size = json.loads(image_tags["chip_size"]), json.loads(mask_tags["chip_size"])
    if image_size != mask_size:
        chip = next(iter(images))
        raise DataError(
            f"Area '{area}': mask '{masks[chip]}' is {mask_size[1]} x {mask_size[0]} px but "
            f"its image '{images[chip]}' is {image_size[1]} x {image_size[0]} px (as are "
            "all of them). Fix the masks: each the size of its image."
        )


def chip_at(tags: dict[str, str], row: int, col: int) -> str:
    """The file of the chip whose cell holds mosaic pixel ``(row, col)`` (from its tags)."""
    files = list(json.loads(tags["chips"]).values())
    height, width = json.loads(tags["chip_size"])
    columns = layout(len(files))[1]
    return files[(row // height) * columns + col // width]


def _whole(area: str, window: object) -> None:
    if window != "all":
        raise ConfigError(
            f"Area '{area}': a chips area is all its chips; set `areas.{area}.window: all` "
            f"(got {window!r})."
        )
