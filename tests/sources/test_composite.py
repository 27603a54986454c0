"""Compositing rules (landcover.sources.composite): offsets, cloud masks, medians, dates."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pystac
import pytest
from shapely.geometry import box, mapping

from landcover.sources.composite import (
    Acquisition,
    boa_offset,
    clear_mask,
    encode_reflectance,
    median_composite,
    mosaic_first,
    select_acquisitions,
    to_reflectance,
)

S2_BBOX = (-16.50, 15.00, -16.49, 15.01)


@pytest.mark.parametrize(
    ("properties", "expected"),
    [
        ({"s2:processing_baseline": "05.10", "earthsearch:boa_offset_applied": False}, -0.1),
        ({"s2:processing_baseline": "04.00"}, -0.1),
        ({"s2:processing_baseline": "05.09", "earthsearch:boa_offset_applied": True}, 0.0),
        ({"s2:processing_baseline": "03.01", "earthsearch:boa_offset_applied": False}, 0.0),
        ({"s2:processing_baseline": "02.14"}, 0.0),
        ({"datetime": "2022-01-25T10:00:00Z"}, -0.1),  # no baseline: the date decides
        ({"datetime": "2021-12-31T10:00:00Z"}, 0.0),
        ({"datetime": "2023-06-01T10:00:00Z", "earthsearch:boa_offset_applied": True}, 0.0),
    ],
)
def test_boa_offset_rule(properties: dict, expected: float) -> None:
    assert boa_offset(properties) == expected


def test_clear_mask_drops_scl_classes() -> None:
    scl = np.arange(12, dtype=np.uint8)
    assert clear_mask(scl).tolist() == [
        False, False, True, False, True, True, True, True, False, False, False, False
    ]  # fmt: skip


def test_to_reflectance_masks_nodata_and_clouds() -> None:
    dn = np.array([[0, 1000, 1500, 2000]], dtype=np.uint16)
    clear = np.array([[True, True, True, False]])
    refl = to_reflectance(dn, 1e-4, -0.1, clear)
    assert refl.dtype == np.float32
    np.testing.assert_allclose(refl, [[np.nan, 0.0, 0.05, np.nan]], atol=1e-7)


def test_median_composite_ignores_nan() -> None:
    nan = np.nan
    stack = np.array([[[0.1, nan, nan]], [[0.3, 0.2, nan]], [[0.2, 0.4, nan]]])
    np.testing.assert_allclose(median_composite(stack), [[0.2, 0.3, nan]])


def test_encode_reflectance_offsets_clips_and_marks_nodata() -> None:
    refl = np.array([0.0, 0.1234, -0.5, 10.0, np.nan], dtype=np.float32)
    assert encode_reflectance(refl).tolist() == [1000, 2234, 1, 65535, 0]


def test_mosaic_first_fills_gaps_in_order() -> None:
    a = np.array([1.0, np.nan, np.nan])
    b = np.array([5.0, 2.0, np.nan])
    np.testing.assert_array_equal(mosaic_first([a, b]), [1.0, 2.0, np.nan])


def _item(item_id: str, day: str, cloud: float, platform: str = "sentinel-2a") -> pystac.Item:
    return pystac.Item(
        id=item_id,
        geometry=mapping(box(*S2_BBOX)),
        bbox=list(S2_BBOX),
        datetime=dt.datetime.fromisoformat(f"{day}T11:00:00+00:00"),
        properties={"eo:cloud_cover": cloud, "platform": platform},
    )


def test_select_acquisitions_filters_groups_and_ranks() -> None:
    items = [
        _item("a1", "2024-01-05", 40),
        _item("a2", "2024-01-05", 20),  # same overpass, neighbouring tile
        _item("b", "2024-01-10", 10),
        _item("c", "2024-01-15", 50),
        _item("late", "2024-04-02", 0),
        _item("cloudy", "2024-01-20", 90),
    ]
    far = _item("far", "2024-01-07", 0)
    far.geometry, far.bbox = mapping(box(10, 10, 11, 11)), [10, 10, 11, 11]
    span = (dt.date(2024, 1, 1), dt.date(2024, 3, 31))
    chosen = select_acquisitions([*items, far], S2_BBOX, span, 70, 2)
    assert [a.date.isoformat() for a in chosen] == ["2024-01-05", "2024-01-10"]
    assert isinstance(chosen[0], Acquisition)
    assert chosen[0].ids == ["a2", "a1"] and chosen[0].cloud_cover == 30
    everything = select_acquisitions([*items, far], S2_BBOX, span, 100, 10)
    assert [a.ids for a in everything] == [["a2", "a1"], ["b"], ["c"], ["cloudy"]]
