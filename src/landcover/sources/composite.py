"""Sentinel-2 L2A compositing: item selection, cloud masks, reflectance and the median.

Everything here is free of I/O: items are ``pystac.Item`` objects already in
memory and rasters are numpy arrays, so each step is testable on a 10 x 10 array.
:mod:`landcover.sources.stac` does the reading and writing around it.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pystac
import shapely.geometry

from landcover.errors import ConfigError
from landcover.grid import BBox
from landcover.sources.sentinel2 import SCL_MASK

BOA_OFFSET = -0.1
"""Reflectance offset of L2A products from processing baseline 04.00 on (DN + 1000)."""

BASELINE_04_START = dt.date(2022, 1, 25)
"""First acquisition date processed with baseline 04.00 (used when the baseline is missing)."""

ENCODE_SCALE = 1e-4
"""GDAL band scale of the written composite: reflectance = DN * scale + offset."""

ENCODE_OFFSET = -0.1
"""GDAL band offset of the written composite (the same convention as baseline >= 04.00)."""

NODATA = 0
"""Nodata DN of the source bands and of the written composite."""

OFFSET_DN = 1000
"""The DN that baseline >= 04.00 adds: with it, a valid DN below it is a negative reflectance."""

MAX_DARK_SHARE = 0.2
"""Share of valid DN below :data:`OFFSET_DN` above which the offset was already removed.

With the offset in the DN, a value below 1000 is a negative reflectance: a few pixels of
dark water or shadow at most. Without it, every target darker than 0.1 (most vegetation,
water and dark soil in the blue band) lies below 1000."""

MIN_PROBE_PIXELS = 100
"""Fewest valid pixels from which the offset is judged from the data (else the metadata)."""


def parse_date(value: str | dt.date | dt.datetime) -> dt.date:
    """Parse a calendar date from ``"YYYY-MM-DD"`` (or an ISO datetime), a date or a datetime.

    Raises:
        ConfigError: when the string is not an ISO date.

    """
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError as err:
        raise ConfigError(
            f"imagery.dates: '{value}' is not a date; write dates as 'YYYY-MM-DD'."
        ) from err


def date_range(dates: Sequence[str | dt.date]) -> tuple[dt.date, dt.date]:
    """Return the inclusive (start, end) of the config's ``imagery.dates``.

    Raises:
        ConfigError: when there are not two dates or the end precedes the start.

    """
    if len(dates) != 2:
        raise ConfigError(
            f"imagery.dates must be [start, end] as 'YYYY-MM-DD' strings, got {list(dates)}."
        )
    start, end = parse_date(dates[0]), parse_date(dates[1])
    if end < start:
        raise ConfigError(
            f"imagery.dates {[str(d) for d in dates]} ends before it starts; give [start, end]."
        )
    return start, end


def _baseline(value: object) -> tuple[int, ...] | None:
    """``"05.10"`` -> ``(5, 10)``; None when missing or unparsable."""
    if value is None:
        return None
    try:
        return tuple(int(part) for part in str(value).strip().split("."))
    except ValueError:
        return None


def boa_offset(properties: Mapping[str, Any]) -> float:
    """Return the reflectance offset to add after scaling the DN of an L2A item.

    Processing baseline 04.00 (from 2022-01-25) adds 1000 to every DN, so
    reflectance = DN * 0.0001 - 0.1. Earth Search's older ``sentinel-2-l2a`` items
    had that offset already removed and say so with
    ``earthsearch:boa_offset_applied: true``. The asset's own ``offset`` field is not
    reliable on its own, so the rule is decided from the item's properties:

    * ``earthsearch:boa_offset_applied`` is true -> 0;
    * else ``s2:processing_baseline`` >= 04.00 -> -0.1, below -> 0;
    * no (readable) baseline: acquisition date on or after 2022-01-25 -> -0.1, else 0.

    Args:
        properties: the item's properties (``datetime`` is read when the baseline is
            missing).

    Returns:
        -0.1 or 0.0.

    """
    if properties.get("earthsearch:boa_offset_applied") is True:
        return 0.0
    baseline = _baseline(properties.get("s2:processing_baseline"))
    if baseline is not None:
        return BOA_OFFSET if baseline >= (4, 0) else 0.0
    when = properties.get("datetime") or properties.get("start_datetime")
    if when is None:
        return 0.0
    return BOA_OFFSET if parse_date(when) >= BASELINE_04_START else 0.0


@dataclass(frozen=True)
class OffsetCheck:
    """The offset of an item: what its metadata says, what was decided and why.

    Attributes:
        metadata: the offset from the item's properties (:func:`boa_offset`).
        offset: the offset used.
        dark_share: the share of valid DN below :data:`OFFSET_DN` (None: not looked at).

    """

    metadata: float
    offset: float
    dark_share: float | None = None

    @property
    def overridden(self) -> bool:
        """Whether the data overrode the metadata."""
        return self.offset != self.metadata


def check_offset(
    dn: np.ndarray,
    valid: np.ndarray,
    metadata: float,
    max_dark_share: float = MAX_DARK_SHARE,
    min_pixels: int = MIN_PROBE_PIXELS,
) -> OffsetCheck:
    """Decide an item's offset from its DN when the metadata says the +1000 is still in them.

    Earth Search has ``sentinel-2-l2a`` items that say ``earthsearch:boa_offset_applied:
    false`` although the offset was already removed (element84/earth-search issues 66
    and 71); trusting the flag shifts them by -0.1 a second time. With the offset present,
    valid DN of dark targets are >= 1000, so a share of valid DN below 1000 above
    ``max_dark_share`` means it was removed: the offset is then 0. A metadata offset of 0
    is kept (a bright scene without offset cannot be told from one with it), and so is
    any offset when fewer than ``min_pixels`` pixels are valid.

    Args:
        dn: digital numbers of a dark band (blue) on the area grid.
        valid: True where the pixel is clear (nodata DN are left out as well).
        metadata: the offset the item's properties give (:func:`boa_offset`).
        max_dark_share: see :data:`MAX_DARK_SHARE`.
        min_pixels: see :data:`MIN_PROBE_PIXELS`.

    Returns:
        The check; its ``offset`` is the one to use.

    """
    if metadata == 0.0:
        return OffsetCheck(metadata, metadata)
    values = dn[valid & (dn != NODATA)]
    if values.size < min_pixels:
        return OffsetCheck(metadata, metadata)
    share = float(np.mean(values < OFFSET_DN))
    return OffsetCheck(metadata, 0.0 if share > max_dark_share else metadata, share)


@dataclass(frozen=True)
class Acquisition:
    """One observation date of the area: the items of one platform on one day.

    Neighbouring Sentinel-2 tiles overlap by about 10 km, so one overpass can give
    several items over an area; they are mosaicked into one observation rather
    than counted twice in the median.

    Attributes:
        date: acquisition date (UTC).
        items: the items, clearest first.
        cloud_cover: the mean ``eo:cloud_cover`` of the items (percent).

    """

    date: dt.date
    items: tuple[pystac.Item, ...]
    cloud_cover: float

    @property
    def ids(self) -> list[str]:
        """The item ids."""
        return [item.id for item in self.items]


def cloud_cover(item: pystac.Item) -> float:
    """Return the item's ``eo:cloud_cover`` in percent; 100 when the item does not say."""
    value = item.properties.get("eo:cloud_cover")
    return 100.0 if value is None else float(value)


def item_date(item: pystac.Item) -> dt.date:
    """Return the item's acquisition date (``datetime``, else ``start_datetime``)."""
    when = item.datetime or item.common_metadata.start_datetime
    if when is None:
        raise ConfigError(f"STAC item '{item.id}' has no datetime.")
    return when.date()


def intersects(item: pystac.Item, bbox: BBox) -> bool:
    """Whether the item's footprint (geometry, else bbox) touches the lon/lat bbox."""
    area = shapely.geometry.box(*bbox)
    if item.geometry:
        return bool(shapely.geometry.shape(item.geometry).intersects(area))
    if item.bbox:
        b = list(item.bbox)
        west, south, east, north = (b[0], b[1], b[3], b[4]) if len(b) == 6 else b
        return bool(shapely.geometry.box(west, south, east, north).intersects(area))
    return False


def select_acquisitions(
    items: Iterable[pystac.Item],
    bbox: BBox,
    dates: tuple[dt.date, dt.date],
    max_cloud: float,
    max_items: int,
) -> list[Acquisition]:
    """Filter items and keep the clearest acquisitions.

    Items must touch the bbox, lie within ``dates`` (inclusive) and have
    ``eo:cloud_cover <= max_cloud``. They are grouped into acquisitions (platform and
    day); the ``max_items`` acquisitions with the lowest mean cloud cover are kept
    (ties: earlier first).

    Args:
        items: candidate items (of one collection).
        bbox: (west, south, east, north) in degrees.
        dates: inclusive (start, end) dates.
        max_cloud: the highest ``eo:cloud_cover`` accepted, in percent.
        max_items: how many acquisitions to keep.

    Returns:
        The kept acquisitions in date order.

    """
    start, end = dates
    kept = [
        item
        for item in items
        if start <= item_date(item) <= end
        and cloud_cover(item) <= max_cloud
        and intersects(item, bbox)
    ]
    acquisitions = group_acquisitions(kept)
    acquisitions.sort(key=lambda a: (a.cloud_cover, a.date, a.ids))
    return sorted(acquisitions[: max(int(max_items), 0)], key=lambda a: (a.date, a.ids))


def group_acquisitions(items: Iterable[pystac.Item]) -> list[Acquisition]:
    """Group items into acquisitions (platform and day), in date order, without filtering.

    Pinned items (``imagery.items``) are composited this way: exactly those items.
    """
    groups: dict[tuple[dt.date, str], list[pystac.Item]] = {}
    for item in items:
        platform = str(item.properties.get("platform", item.properties.get("constellation", "")))
        groups.setdefault((item_date(item), platform), []).append(item)
    acquisitions = [
        Acquisition(
            date=day,
            items=tuple(sorted(group, key=lambda i: (cloud_cover(i), i.id))),
            cloud_cover=float(np.mean([cloud_cover(i) for i in group])),
        )
        for (day, _), group in groups.items()
    ]
    return sorted(acquisitions, key=lambda a: (a.date, a.ids))


def clear_mask(scl: np.ndarray, mask_classes: Sequence[int] = SCL_MASK) -> np.ndarray:
    """Pixels fit for the composite: the scene classification is not in ``mask_classes``.

    Args:
        scl: Sentinel-2 scene classification (SCL) codes; 0 is nodata.
        mask_classes: codes to drop (default: nodata, saturated, cloud shadow,
            cloud medium/high, cirrus, snow).

    Returns:
        Boolean array, True where the pixel is clear.

    """
    return ~np.isin(scl, np.asarray(mask_classes, dtype=scl.dtype))


def clear_count(masks: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
    """Count the acquisitions with a clear look at each pixel.

    Args:
        masks: per acquisition, the clear masks of its items (one look if any is clear).

    Returns:
        uint8 counts (rows, cols), at most 255.

    """
    looks = [np.logical_or.reduce(np.stack(group)) for group in masks]
    return np.minimum(np.sum(looks, axis=0), 255).astype(np.uint8)


def clear_fraction(count: np.ndarray) -> float:
    """The fraction of pixels with at least one clear look."""
    return float(np.mean(count > 0))


def to_reflectance(
    dn: np.ndarray,
    scale: float,
    offset: float,
    clear: np.ndarray | None = None,
    nodata: int | None = NODATA,
) -> np.ndarray:
    """Convert digital numbers to reflectance, NaN where nodata or not clear.

    Args:
        dn: integer digital numbers.
        scale: multiplier (0.0001 for Sentinel-2 L2A).
        offset: added after scaling (see :func:`boa_offset`).
        clear: optional boolean mask, True where the pixel may be used.
        nodata: the DN that marks missing pixels (None: none).

    Returns:
        float32 reflectance.

    """
    refl = dn.astype(np.float32) * np.float32(scale) + np.float32(offset)
    invalid = np.zeros(dn.shape, dtype=bool) if nodata is None else dn == nodata
    if clear is not None:
        invalid |= ~clear
    refl[invalid] = np.nan
    return refl


def median_composite(stack: np.ndarray) -> np.ndarray:
    """Per-pixel median over the first axis, ignoring NaN; NaN where no value.

    Args:
        stack: float array (dates, rows, cols).

    Returns:
        float32 (rows, cols).

    """
    with warnings.catch_warnings():
        # an all-NaN pixel (no clear observation) is expected and stays NaN
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return np.nanmedian(stack, axis=0).astype(np.float32)


def mosaic_first(layers: Iterable[np.ndarray]) -> np.ndarray:
    """Fill NaN pixels of the first layer from the following ones (first valid wins).

    Args:
        layers: float arrays of one shape (one acquisition's items, clearest first).

    Returns:
        float32 array.

    """
    out: np.ndarray | None = None
    for layer in layers:
        if out is None:
            out = layer.astype(np.float32, copy=True)
        else:
            gap = np.isnan(out)
            out[gap] = layer[gap]
    if out is None:
        raise ValueError("mosaic_first needs at least one layer")
    return out


def encode_reflectance(
    refl: np.ndarray, scale: float = ENCODE_SCALE, offset: float = ENCODE_OFFSET
) -> np.ndarray:
    """Encode reflectance as uint16 DN so that reflectance = DN * scale + offset.

    With the defaults DN = round(reflectance * 10000) + 1000, clipped to
    [1, 65535] so that valid pixels never collide with nodata; NaN becomes 0.

    Args:
        refl: float reflectance, NaN where missing.
        scale: the DN step.
        offset: the reflectance of DN 0.

    Returns:
        uint16 array, 0 = nodata.

    """
    valid = np.isfinite(refl)
    dn = np.zeros(refl.shape, dtype=np.uint16)
    values = np.rint((refl[valid].astype(np.float64) - offset) / scale)
    dn[valid] = np.clip(values, 1, np.iinfo(np.uint16).max).astype(np.uint16)
    return dn
