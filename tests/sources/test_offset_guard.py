"""The pure array steps of the radiometry guard and the composite guardrails."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pystac

from landcover.sources.composite import (
    check_offset,
    clear_count,
    clear_fraction,
    group_acquisitions,
)

RNG = np.random.default_rng(0)
REFL = RNG.uniform(0.01, 0.3, (40, 40))  # blue reflectance of a mixed scene
WITH_OFFSET = np.rint(REFL * 10000 + 1000).astype(np.uint16)
WITHOUT_OFFSET = np.rint(REFL * 10000).astype(np.uint16)
CLEAR = np.ones(REFL.shape, bool)


def test_flag_false_but_dn_without_offset_is_read_as_zero() -> None:
    check = check_offset(WITHOUT_OFFSET, CLEAR, -0.1)
    assert check.offset == 0.0 and check.overridden
    assert check.dark_share is not None and check.dark_share > 0.2


def test_dn_with_offset_keep_the_metadata() -> None:
    check = check_offset(WITH_OFFSET, CLEAR, -0.1)
    assert check.offset == -0.1 and not check.overridden and check.dark_share == 0.0


def test_a_few_negative_reflectances_keep_the_offset() -> None:
    dn = WITH_OFFSET.copy()
    dn[:4] = 950  # 10 % dark water slightly over-corrected
    assert check_offset(dn, CLEAR, -0.1).offset == -0.1


def test_metadata_without_offset_is_kept() -> None:
    """A bright scene without offset cannot be told from one with it: the flag stands."""
    check = check_offset(WITH_OFFSET, CLEAR, 0.0)
    assert check.offset == 0.0 and check.dark_share is None


def test_only_clear_valid_pixels_count() -> None:
    dn = WITH_OFFSET.copy()
    dn[:30] = 300  # dark, but cloud shadow
    clear = CLEAR.copy()
    clear[:30] = False
    assert check_offset(dn, clear, -0.1).offset == -0.1
    few = WITHOUT_OFFSET.copy()
    few[2:] = 0  # nodata: 80 valid pixels, too few to judge
    check = check_offset(few, CLEAR, -0.1, min_pixels=100)
    assert check.offset == -0.1 and check.dark_share is None


def test_clear_count_counts_acquisitions_not_items() -> None:
    a = np.array([[True, False], [False, False]])
    b = np.array([[True, True], [False, False]])
    # the first acquisition has two overlapping items: one look where either is clear
    count = clear_count([[a, b], [a]])
    assert count.dtype == np.uint8
    assert count.tolist() == [[2, 1], [0, 0]]
    assert clear_fraction(count) == 0.5


def test_group_acquisitions_keeps_every_item() -> None:
    def item(item_id: str, day: int, cloud: float) -> pystac.Item:
        when = dt.datetime(2024, 1, day, 11, tzinfo=dt.timezone.utc)
        props = {"eo:cloud_cover": cloud, "platform": "sentinel-2a"}
        return pystac.Item(item_id, None, None, when, props)

    groups = group_acquisitions([item("c", 9, 99), item("a", 5, 10), item("b", 5, 5)])
    assert [g.date.day for g in groups] == [5, 9]
    assert groups[0].ids == ["b", "a"] and groups[1].ids == ["c"]
