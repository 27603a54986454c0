"""Align an area's raw imagery and labels onto the area's one pixel grid.

The imagery (uint16 digital numbers, any CRS and resolution) becomes float32
reflectance on the area grid; the labels (source codes, e.g. WorldCover in
EPSG:4326) become class indices on the same grid. Both are warped with
:func:`rasterio.warp.reproject`, which drives GDAL's warper: it reads only the
source blocks that the destination grid needs. An area without labels
(``labelled: false``) has its imagery aligned alone (:func:`align_image`), on the same
grid and by the same code.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.warp import reproject, transform_bounds
from rasterio.windows import Window

from landcover.classes import IGNORE, ClassMap
from landcover.errors import ConfigError, DataError
from landcover.grid import BBox, Grid, area_grid, check_bbox
from landcover.io import atomic_path, gtiff_profile, open_raster
from landcover.mapping.legend import write_legend

log = logging.getLogger(__name__)

PathLike = str | Path
Bounds = tuple[float, float, float, float]
"""(left, bottom, right, top) in some CRS."""

LabelResampling = Literal["nearest", "mode"]


def image_profile(grid: Grid, count: int) -> dict[str, object]:
    """Profile of the aligned image: float32 reflectance, NaN nodata, ZSTD, no predictor.

    It is read again by tiling and by every map of the area: ZSTD decodes much faster
    without the floating-point predictor (3) for slightly larger files
    (``bench/align_efficiency.py``).
    """
    return gtiff_profile(
        grid.crs,
        grid.transform,
        grid.shape,
        count,
        "float32",
        np.nan,
        codec="zstd",
        interleave="band",
    )


def labels_profile(grid: Grid) -> dict[str, object]:
    """Profile of the aligned labels: uint8 class indices, 255 (ignore) nodata, ZSTD."""
    return gtiff_profile(
        grid.crs,
        grid.transform,
        grid.shape,
        1,
        "uint8",
        IGNORE,
        codec="zstd",
        interleave="band",
        predictor=2,
    )


def choose_resampling(src_crs: CRS | str, src_transform: Affine, grid: Grid) -> Resampling:
    """Pick the resampling of continuous imagery onto ``grid``.

    * Same CRS, source pixels an integer multiple (1, 2, 6, ...) of the grid's and
      aligned with it (Sentinel-2's 10/20/60 m on the 60 m-snapped area grid):
      ``nearest``. Each target pixel centre falls inside exactly one source pixel,
      so values are copied exactly; bilinear would blur a 20 m band across its
      pixel edges and invent values no sensor measured.
    * Same CRS, finer source: ``average`` (area-weighted, no aliasing).
    * Anything else (another CRS, rotated or non-integer ratios): ``bilinear``,
      the usual choice for reflectance; GDAL leaves nodata source pixels out of
      the kernel.

    Args:
        src_crs: CRS of the source raster.
        src_transform: affine transform of the source raster.
        grid: the target grid.

    """
    if CRS.from_user_input(src_crs) != CRS.from_user_input(grid.crs):
        return Resampling.bilinear
    if src_transform.b != 0 or src_transform.d != 0:
        return Resampling.bilinear
    res = grid.resolution
    ratios = (src_transform.a / res, -src_transform.e / res)
    shifts = (
        (src_transform.c - grid.transform.c) / res,
        (src_transform.f - grid.transform.f) / res,
    )

    def whole(value: float) -> bool:
        return math.isclose(value, round(value), abs_tol=1e-6)

    if all(r >= 1 - 1e-9 and whole(r) for r in ratios) and all(whole(s) for s in shifts):
        return Resampling.nearest
    if all(r < 1 for r in ratios):
        return Resampling.average
    return Resampling.bilinear


def dn_to_reflectance(dn: np.ndarray, scale: float, offset: float) -> np.ndarray:
    """Digital numbers to reflectance, ``dn * scale + offset``, as float32 (NaN stays NaN).

    Computed in float64 and rounded once, so ``0.0`` stays ``0.0`` and not ``-7e-9``.
    """
    return (dn.astype(np.float64) * scale + offset).astype(np.float32)


def mask_labels(labels: np.ndarray, image_valid: np.ndarray) -> np.ndarray:
    """Set labels to ``IGNORE`` (255) where the image has no data."""
    out = labels.copy()
    out[~image_valid] = IGNORE
    return out


def intersect_bounds(a: Bounds, b: Bounds) -> Bounds | None:
    """Intersection of two (left, bottom, right, top) boxes; ``None`` if it has no area."""
    left, bottom = max(a[0], b[0]), max(a[1], b[1])
    right, top = min(a[2], b[2]), min(a[3], b[3])
    if left >= right or bottom >= top:
        return None
    return (left, bottom, right, top)


def align_area(
    area: str,
    bbox: Sequence[float],
    imagery: PathLike | Sequence[PathLike],
    labels: PathLike,
    out_image: PathLike,
    out_labels: PathLike,
    *,
    classes: Sequence[Mapping[str, object]],
    ignore_codes: Sequence[int],
    resolution: float,
    crs: str | None,
    label_resampling: LabelResampling,
    threads: int = 1,
    window: object = None,
) -> Grid:
    """Warp an area's raw imagery and labels onto the area grid and write both.

    Outputs (``docs/contracts.md``, "Aligned"): ``out_image`` is float32
    reflectance (``DN * scale + offset`` with each band's own GDAL scale/offset),
    nodata NaN, band descriptions and provenance tags of the raw imagery;
    ``out_labels`` is uint8 class indices, 255 for nodata, ignored codes and
    pixels where any image band is nodata, with the class map's colour table and
    a ``classes`` tag (JSON list of names). Both share CRS, transform and shape;
    both are written atomically (a failure leaves neither).

    Args:
        area: the area's name (for messages and tags).
        bbox: (west, south, east, north) in degrees; None for an area given as a pixel
            window, put together on its files' own grid (:func:`align_window_area`).
        imagery: the raw imagery GeoTIFF, or several whose bands are stacked in order
            (e.g. a 10 m and a 20 m file).
        labels: the raw labels GeoTIFF (source codes).
        out_image: path of the aligned image.
        out_labels: path of the aligned labels.
        classes: the config's ``classes`` list of ``{name, codes, colour}``.
        ignore_codes: source codes that become 255.
        resolution: pixel size of the area grid in metres.
        crs: CRS of the area grid; default the UTM zone of the bbox centre.
        label_resampling: ``"nearest"`` or ``"mode"`` (majority of the source
            pixels under each target pixel).
        threads: GDAL warper and compression threads.
        window: the area's pixel window (for the log; the raw files hold only it).

    Returns:
        The area grid.

    Raises:
        DataError: a raw file is corrupt, has no CRS, does not overlap the area or
            the other file, holds a label code missing from the class map, or the
            area has no valid pixel after alignment.
        ConfigError: an unknown ``label_resampling``.

    """
    class_map = ClassMap.from_config(classes, ignore_codes)
    paths = _imagery_paths(imagery)
    if bbox is None:  # an area given as a pixel window: its files' own grid
        log.info("area '%s': pixel window %s of the local files", area, window)
        grid = align_window_area(area, paths, labels, out_image, out_labels, class_map)
        _legend(out_labels, class_map)
        return grid
    if label_resampling not in ("nearest", "mode"):
        raise ConfigError(
            f"grid.label_resampling: '{label_resampling}' is not supported; use 'nearest' "
            "or 'mode' (labels are categories and must not be interpolated)."
        )
    bbox4, grid = _bbox_grid(area, bbox, resolution, crs)

    with contextlib.ExitStack() as stack:
        images = _open_imagery(stack, area, paths)
        label_ds = stack.enter_context(open_raster(labels, f"raw labels of area '{area}'"))
        _check_overlap(area, bbox4, grid, images, label_ds)
        with (
            rasterio.Env(GDAL_NUM_THREADS=str(threads)),
            atomic_path(out_image) as tmp_image,
            atomic_path(out_labels) as tmp_labels,
        ):
            image_valid = _write_image(area, images, grid, tmp_image, threads)
            codes, fill = _warp_labels(area, label_ds, grid, label_resampling, threads)
            index = _remap(area, class_map, codes, fill, label_ds)
            index = mask_labels(index, image_valid)
            if (index == IGNORE).all():
                raise DataError(
                    f"Area '{area}': no pixel of the labels {_raw_copy(label_ds)} carries a "
                    "class where the imagery has data (all nodata or ignored codes). Check "
                    f"that the labels cover `areas.{area}.bbox` and that `ignore_codes` does "
                    "not hold every code present; a copy made before its source was fixed is "
                    f"stale: {_rebuild(label_ds, 'acquire_labels')}."
                )
            _write_labels(tmp_labels, index, grid, class_map, area, label_ds.tags())
    _legend(out_labels, class_map)
    log.info(
        "area '%s': %.1f%% of pixels labelled",
        area,
        100 * float(np.mean(index != IGNORE)),
    )
    return grid


def align_image(
    area: str,
    bbox: Sequence[float] | None,
    imagery: PathLike | Sequence[PathLike],
    out_image: PathLike,
    *,
    resolution: float,
    crs: str | None,
    threads: int = 1,
    window: object = None,
) -> Grid:
    """Warp the raw imagery of an area without labels onto its grid and write it.

    The imagery half of :func:`align_area` (the same grid, resampling, checks and
    ``out_image``, by the same code) for an area with ``labelled: false``: it is mapped
    and drawn, never tiled or scored, so it has no labels to align. An area given as a
    pixel window (chips included: the mosaic's ``chips`` and ``chip_size`` tags are kept)
    is put together on its files' own grid (:func:`align_window_area`).

    Args:
        area: the area's name (for messages and tags).
        bbox: (west, south, east, north) in degrees; None for a pixel window.
        imagery: the raw imagery GeoTIFF, or several whose bands are stacked in order.
        out_image: path of the aligned image.
        resolution: pixel size of the area grid in metres.
        crs: CRS of the area grid; default the UTM zone of the bbox centre.
        threads: GDAL warper and compression threads.
        window: the area's pixel window (for the log; the raw files hold only it).

    Returns:
        The area grid.

    Raises:
        DataError: a raw file is corrupt, has no CRS, misses the area, or the imagery is
            all nodata on the area grid.

    """
    paths = _imagery_paths(imagery)
    if bbox is None:
        log.info("area '%s' (no labels): pixel window %s of the local files", area, window)
        return align_window_area(area, paths, None, out_image, None, None)
    bbox4, grid = _bbox_grid(area, bbox, resolution, crs)
    with contextlib.ExitStack() as stack:
        images = _open_imagery(stack, area, paths)
        _check_overlap(area, bbox4, grid, images, None)
        with rasterio.Env(GDAL_NUM_THREADS=str(threads)), atomic_path(out_image) as tmp_image:
            _write_image(area, images, grid, tmp_image, threads)
    log.info("area '%s': imagery aligned (no labels: mapped only)", area)
    return grid


def _imagery_paths(imagery: PathLike | Sequence[PathLike]) -> list[PathLike]:
    """One raw imagery file, or several whose bands are stacked, as a list."""
    return [imagery] if isinstance(imagery, (str, Path)) else list(imagery)


def _bbox_grid(
    area: str, bbox: Sequence[float], resolution: float, crs: str | None
) -> tuple[BBox, Grid]:
    """The checked bbox of an area and its grid (logged)."""
    bbox4 = check_bbox(tuple(bbox), area)  # type: ignore[arg-type]
    grid = area_grid(bbox4, resolution, crs)
    log.info("area '%s': grid %s, %d x %d px at %s", area, grid.crs, *grid.shape[::-1], resolution)
    return bbox4, grid


def _open_imagery(
    stack: contextlib.ExitStack, area: str, paths: Sequence[PathLike]
) -> list[rasterio.DatasetReader]:
    """Open every raw imagery file of an area for the life of ``stack``."""
    return [stack.enter_context(open_raster(p, f"raw imagery of area '{area}'")) for p in paths]


def _legend(out_labels: PathLike, class_map: ClassMap) -> None:
    """Write the class names where QGIS and GDAL read them, beside the labels.

    After the labels: a sidecar never outlives a failed write.
    """
    rgba = class_map.colormap()
    names = list(class_map.names)
    write_legend(out_labels, range(len(names)), names, [rgba[i] for i in range(len(names))])


STRIP = 512
"""Rows of an area given as a window copied at a time."""


def align_window_area(
    area: str,
    imagery: Sequence[PathLike],
    labels: PathLike | None,
    out_image: PathLike,
    out_labels: PathLike | None,
    class_map: ClassMap | None,
) -> Grid:
    """Put an area given as a pixel window together on its files' own grid, strip by strip.

    Nothing is reprojected (the files may have no CRS): the raw imagery and labels must
    have the same size (and transform when georeferenced). The outputs are those of
    :func:`align_area`; memory is bounded by a strip of rows, whatever the scene's size.
    ``labels``, ``out_labels`` and ``class_map`` None (an area without labels,
    :func:`align_image`): the image alone.

    Raises:
        DataError: files of different sizes, or no labelled pixel with imagery.

    """
    with contextlib.ExitStack() as stack:
        images = _open_imagery(stack, area, imagery)
        label_ds = None
        if labels is not None:
            label_ds = stack.enter_context(open_raster(labels, f"raw labels of area '{area}'"))
        first = images[0]
        if label_ds is not None and "chips" in first.tags() and "chips" in label_ds.tags():
            # chip mosaics; imported here: landcover.sources imports this module
            from landcover.sources.chips import check_pairs

            check_pairs(area, first.tags(), label_ds.tags())
        crs = first.crs.to_string() if first.crs else None
        grid = Grid(crs, first.transform, first.width, first.height)  # type: ignore[arg-type]
        _check_same_grid(area, [*images, *([] if label_ds is None else [label_ds])], grid)
        log.info(
            "area '%s': its files' grid, %d x %d px, CRS %s", area, *grid.shape[::-1], grid.crs
        )
        tags: dict[str, str] = {}
        for ds in images:
            tags = {**ds.tags(), **tags}
        # both temporary files first: a failure on either side leaves neither output
        tmp_image = stack.enter_context(atomic_path(out_image))
        tmp_labels = None if label_ds is None else stack.enter_context(atomic_path(out_labels))
        count = sum(d.count for d in images)
        dst = stack.enter_context(rasterio.open(tmp_image, "w", **image_profile(grid, count)))
        lab = None
        if label_ds is not None and class_map is not None:
            lab = stack.enter_context(rasterio.open(tmp_labels, "w", **labels_profile(grid)))
            lab.write_colormap(1, class_map.colormap())
        labelled = 0
        for top in range(0, grid.height, STRIP):
            window = Window(0, top, grid.width, min(STRIP, grid.height - top))
            reflectance = _window_reflectance(area, images, window)
            dst.write(reflectance, window=window)
            if lab is None:
                continue
            valid = np.isfinite(reflectance).all(axis=0)
            with _reading(area, label_ds, "acquire_labels"):
                codes = label_ds.read(1, window=window)
            index = mask_labels(_remap_window(area, class_map, codes, label_ds, top), valid)
            lab.write(index, 1, window=window)
            labelled += int((index != IGNORE).sum())
        names = [d or f"band{i}" for ds in images for i, d in enumerate(ds.descriptions, 1)]
        for band, name in enumerate(names, 1):
            dst.set_band_description(band, name)
        dst.update_tags(**{**tags, "area": area})
        if lab is None:
            return grid
        lab.set_band_description(1, "class")
        classes = json.dumps(list(class_map.names))
        lab.update_tags(**{**label_ds.tags(), "area": area, "classes": classes})
        if not labelled:
            raise DataError(
                f"Area '{area}': no pixel of the labels {_raw_copy(label_ds)} carries a "
                "class where the imagery has data (all nodata or ignored codes). Check "
                f"`areas.{area}.window`, `labels.root` and `ignore_codes`."
            )
    log.info("area '%s': %d px labelled", area, labelled)
    return grid


def _remap_window(
    area: str, class_map: ClassMap, codes: np.ndarray, labels: rasterio.DatasetReader, top: int
) -> np.ndarray:
    """Codes of a strip to class indices; for a chip mosaic an unknown code names its chip."""
    try:
        return _remap(area, class_map, codes, labels.nodata, labels)
    except DataError as err:
        if "chips" not in labels.tags():
            raise
        from landcover.sources.chips import chip_at  # here: landcover.sources imports this

        lut = class_map.lookup_table(max(65536, int(codes.max()) + 1))
        unknown = (lut[codes.astype(np.int64)] < 0) & (codes != labels.nodata)
        row, col = (int(v) for v in np.argwhere(unknown)[0])
        chip = chip_at(labels.tags(), top + row, col)
        raise DataError(f"{err} The first such pixel is in the mask chip '{chip}'.") from None


def _check_same_grid(area: str, datasets: Sequence[rasterio.DatasetReader], grid: Grid) -> None:
    """Raw files of an area given as a window must share its grid (nothing is warped)."""
    for ds in datasets:
        same_size = (ds.width, ds.height) == (grid.width, grid.height)
        same_place = ds.crs is None or ds.transform.almost_equals(grid.transform)
        if not same_size or not same_place:
            raise DataError(
                f"Area '{area}': the raw file {_raw_copy(ds)} is {ds.width} x {ds.height} px "
                f"(transform {tuple(ds.transform)[:6]}) but the area's imagery is "
                f"{grid.width} x {grid.height} px (transform {tuple(grid.transform)[:6]}). "
                "An area given as a `window` is never resampled, so imagery and labels must "
                "be the same size (and place). Fix: give labels.root and imagery.root files "
                "of one pixel grid, or give the area a `bbox`."
            )


def _window_reflectance(
    area: str, images: Sequence[rasterio.DatasetReader], window: Window
) -> np.ndarray:
    """Reflectance (float32, NaN nodata) of every band of ``images`` over ``window``."""
    bands = []
    for ds in images:
        with _reading(area, ds, "acquire_imagery"):
            dn = ds.read(window=window, masked=True)
        for band in range(ds.count):
            values = np.ma.filled(dn[band].astype(np.float64), np.nan)
            bands.append(dn_to_reflectance(values, ds.scales[band], ds.offsets[band]))
    return np.stack(bands)


def local_original(tags: Mapping[str, str]) -> str | None:
    """The user's file(s) a raw copy was made from, when a local source made it.

    From the copy's tags: ``kind`` is ``local`` and ``source`` is the path (imagery:
    ``imagery.root``) or a JSON list of paths (labels). None for other kinds.
    """
    if tags.get("kind") != "local" or not tags.get("source"):
        return None
    source = tags["source"]
    try:
        paths = json.loads(source)
    except ValueError:
        return source
    return ", ".join(str(p) for p in paths) if isinstance(paths, list) else source


def _raw_copy(ds: rasterio.DatasetReader) -> str:
    """A raw file for a message: its path and, from a local source, the user's file."""
    original = local_original(ds.tags())
    return f"'{ds.name}'" + (f" (the copy of your file '{original}')" if original else "")


def _rebuild(ds: rasterio.DatasetReader, rule: str) -> str:
    """How to make a raw copy again from its source with ``rule`` (``acquire_*``)."""
    return (
        f"rebuild it with `snakemake --forcerun {rule}` (with your usual target), or "
        f"delete '{ds.name}' and rerun"
    )


def _empty_imagery(area: str, images: Sequence[rasterio.DatasetReader]) -> str:
    """The message of imagery that is all nodata on the area grid, with the kind's fix."""
    copies = " and ".join(_raw_copy(ds) for ds in images)
    local = any(local_original(ds.tags()) for ds in images)
    check = (
        "check that your file holds data over the area (and that its nodata value is right)"
        if local
        else "widen `imagery.dates` or raise `imagery.max_cloud` if no clear scene covers it"
    )
    return (
        f"Area '{area}': the imagery {copies} is all nodata on the area grid after "
        f"alignment. Fix: {check}, or check `areas.{area}.bbox`; then "
        f"{_rebuild(images[0], 'acquire_imagery')}."
    )


def _remap(
    area: str,
    class_map: ClassMap,
    codes: np.ndarray,
    fill: int,
    labels: rasterio.DatasetReader,
) -> np.ndarray:
    """Source codes to class indices; a code missing from the class map names the copy."""
    try:
        return class_map.remap(
            codes, nodata=fill, where=f"Area '{area}', labels {_raw_copy(labels)}"
        )
    except DataError as err:
        if not local_original(labels.tags()):
            raise
        raise DataError(
            f"{err} If you fixed your file since, the copy is stale: "
            f"{_rebuild(labels, 'acquire_labels')}."
        ) from None


def _check_overlap(
    area: str,
    bbox: BBox,
    grid: Grid,
    images: Sequence[rasterio.DatasetReader],
    labels: rasterio.DatasetReader | None,
) -> None:
    """Raise a DataError when a raw file misses the area or the imagery misses the labels.

    ``labels`` None (an area without labels): the imagery files only.
    """
    footprints = {}
    for ds in [*images, *([] if labels is None else [labels])]:
        rule = "acquire_labels" if ds is labels else "acquire_imagery"
        if ds.crs is None:
            raise DataError(
                f"Area '{area}': the raw file {_raw_copy(ds)} has no CRS; the copy is stale or "
                f"corrupt: {_rebuild(ds, rule)}."
            )
        bounds = transform_bounds(ds.crs, grid.crs, *ds.bounds, densify_pts=21)
        if intersect_bounds(bounds, grid.bounds) is None:
            raise DataError(
                f"Area '{area}': the raw file {_raw_copy(ds)} (bounds "
                f"{tuple(round(v) for v in bounds)} in {grid.crs}) does not overlap the area's "
                f"bbox {list(bbox)}. The copy is stale (made for another place): "
                f"{_rebuild(ds, rule)}; or fix `areas.{area}.bbox`."
            )
        footprints[ds.name] = bounds
    if labels is None:
        return
    label_bounds = footprints[labels.name]
    for ds in images:
        common = intersect_bounds(footprints[ds.name], label_bounds)
        if common is None or intersect_bounds(common, grid.bounds) is None:
            raise DataError(
                f"Area '{area}': the imagery {_raw_copy(ds)} and the labels "
                f"{_raw_copy(labels)} do not overlap each other inside the area, so no pixel "
                "has both. A copy is stale (made for another bbox or file): rebuild both with "
                "`snakemake --forcerun acquire_imagery acquire_labels` (with your usual "
                f"target), or delete '{ds.name}' and '{labels.name}' and rerun."
            )


@contextlib.contextmanager
def _reading(area: str, ds: rasterio.DatasetReader, rule: str) -> Iterator[None]:
    """Turn GDAL read failures in the middle of a warp into a DataError with the fix."""
    try:
        yield
    except RasterioError as err:
        raise DataError(
            f"Area '{area}': cannot read {_raw_copy(ds)}: {err}. The copy is corrupt or "
            f"truncated: {_rebuild(ds, rule)}."
        ) from err


def _write_image(
    area: str,
    images: Sequence[rasterio.DatasetReader],
    grid: Grid,
    path: Path,
    threads: int,
) -> np.ndarray:
    """Warp every band onto ``grid``, write reflectance to ``path``; return the valid mask.

    One band is in memory at a time. A pixel is valid when every band has data.

    Raises:
        DataError: no valid pixel (the imagery is all nodata on the area grid).

    """
    count = sum(ds.count for ds in images)
    profile = image_profile(grid, count)
    valid = np.ones(grid.shape, dtype=bool)
    tags: dict[str, str] = {}
    with rasterio.open(path, "w", **profile) as dst:
        out_band = 0
        for ds in images:
            resampling = choose_resampling(ds.crs, ds.transform, grid)
            log.info("imagery '%s': %s resampling", ds.name, resampling.name)
            for tag, value in ds.tags().items():
                tags.setdefault(tag, value)
            for band in range(1, ds.count + 1):
                out_band += 1
                dn = np.full(grid.shape, np.nan, dtype=np.float32)
                with _reading(area, ds, "acquire_imagery"):
                    reproject(
                        source=rasterio.band(ds, band),
                        destination=dn,
                        src_nodata=ds.nodata,
                        dst_transform=grid.transform,
                        dst_crs=grid.crs,
                        dst_nodata=np.nan,
                        resampling=resampling,
                        num_threads=threads,
                    )
                scale, offset = ds.scales[band - 1], ds.offsets[band - 1]
                name = ds.descriptions[band - 1] or f"band{out_band}"
                if scale == 1 and offset == 0:
                    log.warning(
                        "imagery '%s' band %d (%s) has no GDAL scale/offset: values are "
                        "copied as they are, not converted to reflectance",
                        ds.name,
                        band,
                        name,
                    )
                reflectance = dn_to_reflectance(dn, scale, offset)
                valid &= np.isfinite(reflectance)
                dst.write(reflectance, out_band)
                dst.set_band_description(out_band, name)
        dst.update_tags(**{**tags, "area": area})
    if not valid.any():
        raise DataError(_empty_imagery(area, images))
    return valid


def _warp_labels(
    area: str,
    ds: rasterio.DatasetReader,
    grid: Grid,
    resampling: LabelResampling,
    threads: int,
) -> tuple[np.ndarray, int]:
    """Warp the source codes onto ``grid``; return the codes and the code that means nodata."""
    if ds.nodata is not None:
        fill = int(ds.nodata)
        codes = np.full(grid.shape, fill, dtype=ds.dtypes[0])
    else:
        # No nodata code in the source: fill outside it with a value no uint16 code can take.
        fill = 65536
        codes = np.full(grid.shape, fill, dtype=np.int32)
    with _reading(area, ds, "acquire_labels"):
        reproject(
            source=rasterio.band(ds, 1),
            destination=codes,
            src_nodata=ds.nodata,
            dst_transform=grid.transform,
            dst_crs=grid.crs,
            dst_nodata=fill,
            resampling=Resampling[resampling],
            num_threads=threads,
        )
    return codes, fill


def _write_labels(
    path: Path,
    index: np.ndarray,
    grid: Grid,
    class_map: ClassMap,
    area: str,
    source_tags: Mapping[str, str],
) -> None:
    """Write class indices with the colour table, nodata 255 and the class names tag."""
    profile = labels_profile(grid)
    with rasterio.open(path, "w", **profile) as dst:
        # The colour table first: GDAL cannot switch the photometric tag once data is written.
        dst.write_colormap(1, class_map.colormap())
        dst.write(index, 1)
        dst.set_band_description(1, "class")
        tags = {**source_tags, "area": area, "classes": json.dumps(list(class_map.names))}
        dst.update_tags(**tags)
