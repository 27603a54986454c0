"""Align an area's raw imagery and labels onto the area's one pixel grid.

The imagery (uint16 digital numbers, any CRS and resolution) becomes float32
reflectance on the area grid; the labels (source codes, e.g. WorldCover in
EPSG:4326) become class indices on the same grid. Both are warped with
:func:`rasterio.warp.reproject`, which drives GDAL's warper: it reads only the
source blocks that the destination grid needs.
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

from landcover.classes import IGNORE, ClassMap
from landcover.errors import ConfigError, DataError
from landcover.grid import BBox, Grid, area_grid, check_bbox
from landcover.io import atomic_path, gtiff_profile, open_raster

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
        bbox: (west, south, east, north) in degrees.
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

    Returns:
        The area grid.

    Raises:
        DataError: a raw file is corrupt, has no CRS, does not overlap the area or
            the other file, holds a label code missing from the class map, or the
            area has no valid pixel after alignment.
        ConfigError: an unknown ``label_resampling``.

    """
    bbox4 = check_bbox(tuple(bbox), area)  # type: ignore[arg-type]
    grid = area_grid(bbox4, resolution, crs)
    class_map = ClassMap.from_config(classes, ignore_codes)
    if label_resampling not in ("nearest", "mode"):
        raise ConfigError(
            f"grid.label_resampling: '{label_resampling}' is not supported; use 'nearest' "
            "or 'mode' (labels are categories and must not be interpolated)."
        )
    paths = [imagery] if isinstance(imagery, (str, Path)) else list(imagery)
    log.info("area '%s': grid %s, %d x %d px at %s", area, grid.crs, *grid.shape[::-1], resolution)

    with contextlib.ExitStack() as stack:
        images = [
            stack.enter_context(open_raster(p, f"raw imagery of area '{area}'")) for p in paths
        ]
        label_ds = stack.enter_context(open_raster(labels, f"raw labels of area '{area}'"))
        _check_overlap(area, bbox4, grid, images, label_ds)
        with (
            rasterio.Env(GDAL_NUM_THREADS=str(threads)),
            atomic_path(out_image) as tmp_image,
            atomic_path(out_labels) as tmp_labels,
        ):
            image_valid = _write_image(area, images, grid, tmp_image, threads)
            if not image_valid.any():
                raise DataError(
                    f"Area '{area}': the imagery {[str(p) for p in paths]} is all nodata on the "
                    f"area grid after alignment. Delete resources/raw/{area}/ and rerun "
                    "`acquire_imagery` (widen `imagery.dates` or raise `imagery.max_cloud` if "
                    f"no clear scene covers it), or check `areas.{area}.bbox`."
                )
            codes, fill = _warp_labels(area, label_ds, grid, label_resampling, threads)
            index = class_map.remap(codes, nodata=fill, where=f"Area '{area}', labels '{labels}'")
            index = mask_labels(index, image_valid)
            if (index == IGNORE).all():
                raise DataError(
                    f"Area '{area}': no pixel of the labels '{labels}' carries a class where the "
                    "imagery has data (all nodata or ignored codes). Check that the labels "
                    f"cover `areas.{area}.bbox`, that `ignore_codes` does not hold every code "
                    f"present, or delete resources/raw/{area}/labels.tif and rerun "
                    "`acquire_labels`."
                )
            _write_labels(tmp_labels, index, grid, class_map, area, label_ds.tags())
    log.info(
        "area '%s': %.1f%% of pixels labelled",
        area,
        100 * float(np.mean(index != IGNORE)),
    )
    return grid


def _check_overlap(
    area: str,
    bbox: BBox,
    grid: Grid,
    images: Sequence[rasterio.DatasetReader],
    labels: rasterio.DatasetReader,
) -> None:
    """Raise a DataError when a raw file misses the area or the imagery misses the labels."""
    footprints = {}
    for ds in [*images, labels]:
        if ds.crs is None:
            raise DataError(
                f"Area '{area}': raw file '{ds.name}' has no CRS. Delete it and rerun the "
                "rule that makes it (`acquire_imagery` / `acquire_labels`)."
            )
        bounds = transform_bounds(ds.crs, grid.crs, *ds.bounds, densify_pts=21)
        if intersect_bounds(bounds, grid.bounds) is None:
            raise DataError(
                f"Area '{area}': raw file '{ds.name}' (bounds {tuple(round(v) for v in bounds)} "
                f"in {grid.crs}) does not overlap the area's bbox {list(bbox)}. The file "
                f"belongs to another place: delete resources/raw/{area}/ and rerun the acquire "
                f"rules, or fix `areas.{area}.bbox`."
            )
        footprints[ds.name] = bounds
    label_bounds = footprints[labels.name]
    for ds in images:
        common = intersect_bounds(footprints[ds.name], label_bounds)
        if common is None or intersect_bounds(common, grid.bounds) is None:
            raise DataError(
                f"Area '{area}': the imagery '{ds.name}' and the labels '{labels.name}' do not "
                "overlap each other inside the area, so no pixel has both. Delete "
                f"resources/raw/{area}/ and rerun `acquire_imagery` and `acquire_labels` for "
                "this area's bbox."
            )


@contextlib.contextmanager
def _reading(area: str, path: str) -> Iterator[None]:
    """Turn GDAL read failures in the middle of a warp into a DataError with the fix."""
    try:
        yield
    except RasterioError as err:
        raise DataError(
            f"Area '{area}': cannot read '{path}': {err}. The file is corrupt or truncated; "
            "delete it and rerun the rule that makes it."
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
                with _reading(area, ds.name):
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
    with _reading(area, ds.name):
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
