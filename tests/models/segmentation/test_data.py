"""Patch dataset, augmentation, sampling and band statistics (segmentation.data).

The patches come from the session's tiny synthetic store (the ``patch_store`` fixture).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from landcover.classes import IGNORE
from landcover.errors import ConfigError
from landcover.models.segmentation.data import (
    CENTRE_SHIFT,
    N_DIHEDRAL,
    EpochSampler,
    PatchDataset,
    band_stats,
    centred_window,
    check_positive_class,
    dihedral,
    jitter_bands,
    negative_draws,
    normalise,
    positive_class_index,
    rare_class_weights,
    split_code,
    window_mask,
)
from landcover.prepare.store import stores


def test_normalise_sets_invalid_pixels_to_zero():
    images = np.array([[[[1.0, np.nan]], [[3.0, 5.0]]]], np.float32)  # (1, 2, 1, 2)
    out = normalise(images, mean=[1.0, 4.0], std=[2.0, 1.0])
    np.testing.assert_allclose(out, [[[[0.0, 0.0]], [[-1.0, 1.0]]]])
    assert out.dtype == np.float32


def test_dihedral_gives_eight_distinct_transforms():
    a = np.arange(9).reshape(3, 3)
    results = {dihedral(a, code).tobytes() for code in range(8)}
    assert len(results) == 8
    np.testing.assert_array_equal(dihedral(a, 0), a)
    np.testing.assert_array_equal(dihedral(a, 4), a[:, ::-1])
    # image (C, H, W) and label (H, W) move together
    image = np.stack([a, a * 10])
    np.testing.assert_array_equal(dihedral(image, 5)[1], dihedral(a, 5) * 10)


def patch_of(patch_store, area: str, patch: int) -> tuple[np.ndarray, np.ndarray]:
    """Patch ``patch`` of ``area`` read from the store's arrays by hand: (C, P, P), (P, P)."""
    table = pd.read_parquet(patch_store["index"])
    row = table[(table["area"] == area) & (table["patch"] == patch)].iloc[0]
    r, c, p = int(row["row"]), int(row["col"]), int(row["size"])
    images = np.load(patch_store["patches_dir"] / area / "images.npy")
    labels = np.load(patch_store["patches_dir"] / area / "labels.npy")
    return images[r : r + p, c : c + p].transpose(2, 0, 1), labels[r : r + p, c : c + p]


def test_band_stats_match_numpy(patch_store):
    table = pd.read_parquet(patch_store["index"])
    train = table[table["split"] == "train"]
    mean, std = band_stats(patch_store["stores"], train, strip=5)
    stack = np.stack(
        [patch_of(patch_store, a, p)[0] for a, p in zip(train["area"], train["patch"], strict=True)]
    )
    np.testing.assert_allclose(mean, np.nanmean(stack, axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(std, np.nanstd(stack, axis=(0, 2, 3)), rtol=1e-4)


def test_band_stats_count_an_overlap_once(patch_store):
    table = pd.read_parquet(patch_store["index"])
    rows = table[(table["area"] == "a") & table["patch"].isin([0, 1])]
    overlapping = pd.concat([rows, rows.assign(col=rows["col"].iloc[0] + 8).iloc[:1]])
    assert band_stats(patch_store["stores"], overlapping) == band_stats(
        patch_store["stores"], rows
    )  # the third window lies inside the first two


def test_dataset_reads_normalised_patch(patch_store):
    table = pd.read_parquet(patch_store["index"])
    rows = table[table["area"] == "b"].iloc[[2, 5]]
    ds = PatchDataset(patch_store["stores"], rows, mean=[0.1] * 4, std=[0.5] * 4)
    image, label, i = ds[(1, 3)]
    raw, raw_label = patch_of(patch_store, "b", 5)
    expected = dihedral(np.nan_to_num((raw - 0.1) / 0.5), 3)
    np.testing.assert_allclose(image.numpy(), expected, rtol=1e-6)
    np.testing.assert_array_equal(label.numpy(), dihedral(raw_label, 3))
    assert i == 1 and image.dtype == torch.float32 and label.dtype == torch.uint8
    assert not torch.isnan(image).any()


def test_sampler_permutes_reproducibly():
    a, b = EpochSampler(10, seed=3), EpochSampler(10, seed=3)
    first = list(a)
    assert sorted(i for i, _ in first) == list(range(10))
    assert first == list(b)
    a.set_epoch(1)
    assert list(a) != first


def test_sampler_shards_cover_all_patches():
    ranks = [EpochSampler(9, seed=0, rank=r, world_size=2) for r in range(2)]
    draws = [list(s) for s in ranks]
    assert len(draws[0]) == len(draws[1]) == 5
    assert {i for d in draws for i, _ in d} == set(range(9))


def test_hard_mining_draws_high_loss_patches_more():
    sampler = EpochSampler(4, seed=0, hard_fraction=1.0, augment=False)
    sampler.update_losses(np.arange(4), np.array([0.01, 0.01, 0.01, 10.0]))
    p = sampler.probabilities()
    assert p[3] > 0.99
    order, codes = sampler.draws()
    assert (order == 3).sum() >= 3 and not codes.any()


def test_rare_class_weights_favour_rare_classes():
    counts = np.array([[100, 0], [90, 10], [100, 0]])
    w = rare_class_weights(counts, strength=1.0)
    assert w[1] > w[0] == w[2]
    np.testing.assert_allclose(rare_class_weights(counts, 0.0), 1.0)


def test_jitter_is_a_seeded_per_band_gain_and_offset_that_keeps_nodata():
    image = np.full((3, 4, 4), 0.2, np.float32)
    image[1, 0, 0] = np.nan
    a, b = jitter_bands(image, 0.05, seed=7), jitter_bands(image, 0.05, seed=7)
    np.testing.assert_array_equal(a, b)
    assert np.isnan(a[1, 0, 0]) and np.isfinite(np.delete(a.ravel(), 16)).all()
    # one gain and offset per band: each band stays flat, the bands move apart
    per_band = [np.unique(a[i][np.isfinite(a[i])]) for i in range(3)]
    assert all(len(v) == 1 for v in per_band) and len({float(v[0]) for v in per_band}) == 3
    assert not np.array_equal(a, jitter_bands(image, 0.05, seed=8))


def test_sampler_jitter_adds_seeds_without_changing_order_or_transforms():
    plain, jittered = EpochSampler(12, seed=1), EpochSampler(12, seed=1, jitter=True)
    p, j = list(plain), list(jittered)
    assert [i for i, _ in p] == [i for i, _ in j]
    assert [c for _, c in p] == [c % 8 for _, c in j]
    assert all(c >= 8 for _, c in j)


def test_dataset_jitters_only_keys_with_a_seed_and_only_when_asked(patch_store):
    table = pd.read_parquet(patch_store["index"])
    rows = table[table["area"] == "b"].iloc[[2]]
    args = (patch_store["stores"], rows, [0.1] * 4, [0.5] * 4)
    off, on = PatchDataset(*args), PatchDataset(*args, jitter=0.05)
    seeded = 3 + 8 * 12345  # transform 3, jitter seed 12345
    np.testing.assert_array_equal(off[(0, seeded)][0], off[(0, 3)][0])
    np.testing.assert_array_equal(on[(0, 3)][0], off[(0, 3)][0])
    jittered, label, _ = on[(0, seeded)]
    assert not np.allclose(jittered.numpy(), off[(0, 3)][0].numpy())
    np.testing.assert_array_equal(label, off[(0, 3)][1])


# --------------------------------------------------------------------------- positive sampling


def positive_sampler(seed=0, n=200, n_pos=30, fraction=0.4, hard=0.5, **kwargs):
    """A sampler over ``n`` patches whose first ``n_pos`` hold the positive class."""
    positives = np.arange(n) < n_pos
    return EpochSampler(
        n, seed, positives=positives, positive_fraction=fraction, hard_negatives=hard, **kwargs
    )


def test_positive_fraction_holds_in_every_epoch_and_only_positives_are_centred():
    sampler = positive_sampler()
    for epoch in range(5):
        sampler.set_epoch(epoch)
        order, codes = sampler.draws()
        centred = np.array([split_code(c)[2] > 0 for c in codes])
        positive = order < 30
        assert len(order) == 200
        assert positive.mean() == pytest.approx(0.4, abs=0.01)
        np.testing.assert_array_equal(centred, positive)  # each positive draw asks for a centre
        assert {split_code(c)[0] for c in codes} <= set(range(8))


def test_positive_sampling_is_deterministic_for_a_seed():
    a, b, c = positive_sampler(seed=5), positive_sampler(seed=5), positive_sampler(seed=6)
    for sampler in (a, b, c):
        sampler.update_losses(np.arange(200), np.linspace(0.1, 2.0, 200))
    assert list(a) == list(b)
    assert list(a) != list(c)
    a.set_epoch(1)
    b.set_epoch(1)
    assert list(a) == list(b)


def test_hard_negatives_are_the_highest_loss_negatives():
    sampler = positive_sampler(n=100, n_pos=10, fraction=0.2, hard=0.5, augment=False)
    order, _ = sampler.draws()  # no loss yet: every negative is random
    assert (order < 10).sum() == 20
    losses = np.full(100, 0.1)
    hardest = np.array([13, 27, 41, 55, 60, 71, 88, 99])
    losses[hardest] = np.arange(2.0, 10.0)
    losses[:10] = 50.0  # positives' losses do not make them negatives
    sampler.update_losses(np.arange(100), losses)
    sampler.set_epoch(1)
    order, _ = sampler.draws()
    negatives = order[order >= 10]
    assert len(negatives) == 80
    # 40 hard negatives asked, 90 negatives seen: the 40 of highest loss, the 8 above first
    assert set(hardest) <= set(negatives.tolist())
    drawn = negative_draws(np.arange(10, 100), losses, 80, 0.5, np.random.default_rng(0))
    np.testing.assert_array_equal(drawn[:8], hardest[::-1])  # hardest first
    assert len(set(drawn[:40].tolist())) == 40  # each hard negative once


def test_negative_draws_are_random_without_losses_and_only_negatives():
    rng = np.random.default_rng(1)
    losses = np.full(50, np.nan)
    drawn = negative_draws(np.arange(20, 50), losses, 25, 1.0, rng)
    assert len(drawn) == 25 and len(set(drawn.tolist())) == 25  # without replacement
    assert (drawn >= 20).all()
    assert len(negative_draws(np.arange(20, 50), losses, 0, 0.5, rng)) == 0


def test_sampler_without_positive_patches_is_an_error():
    with pytest.raises(ValueError, match="positive"):
        EpochSampler(10, 0, positives=np.zeros(10, bool), positive_fraction=0.5)


def test_positive_class_is_the_rarest_present_or_the_named_one():
    counts = np.array([[100, 0, 5], [50, 0, 0], [80, 0, 1]])  # class 1 absent, class 2 rarest
    assert positive_class_index(counts, ["tree", "water", "built_up"], None) == 2
    assert positive_class_index(counts, ["tree", "water", "built_up"], "tree") == 0
    with pytest.raises(ConfigError, match=r"training\.positive_class: 'lake'"):
        positive_class_index(counts, ["tree", "water", "built_up"], "lake")
    check_positive_class(None, ["tree"])  # null: the rarest, nothing to check


def test_split_code_separates_transform_jitter_and_centre():
    code = 5 + N_DIHEDRAL * 123456 + (77 << CENTRE_SHIFT)
    assert split_code(code) == (5, 123456, 77)
    assert split_code(3) == (3, 0, 0)
    assert split_code(3 + N_DIHEDRAL * (2**31 - 1)) == (3, 2**31 - 1, 0)


def test_centred_window_puts_the_pixel_at_the_centre_and_stays_in_the_area():
    assert centred_window(32, 32, 32, (8, 18), (96, 96)) == (24, 34)
    assert centred_window(0, 0, 32, (2, 3), (96, 96)) == (0, 0)  # clamped at the top left
    assert centred_window(64, 64, 32, (30, 31), (96, 96)) == (64, 64)  # and bottom right


def test_window_mask_marks_the_pixels_inside_the_windows():
    mask = window_mask(24, 34, 32, np.array([[32, 32, 32], [0, 64, 32], [90, 90, 32]]))
    assert mask[8:, :30].all() and mask[:8, 30:].all()
    assert not mask[:8, :30].any() and not mask[8:, 30:].any()
    assert mask.sum() == 24 * 30 + 8 * 2  # the third window misses this one


def write_positive_store(root, positive_at=(40, 50)):
    """A 96 x 96 px area of class 0 with one pixel of class 1; nine 32 px patches."""
    root.mkdir(parents=True, exist_ok=True)
    labels = np.zeros((96, 96), np.uint8)
    labels[positive_at] = 1
    images = np.stack([np.arange(96 * 96, dtype=np.float32).reshape(96, 96)] * 2, axis=-1)
    np.save(root / "images.npy", images)
    np.save(root / "labels.npy", labels)
    rows = pd.DataFrame(
        [(r, c) for r in (0, 32, 64) for c in (0, 32, 64)], columns=["row", "col"]
    ).assign(area="x", size=32)
    return stores(["x"], [root / "images.npy"], [root / "labels.npy"]), rows


def test_dataset_centres_a_positive_draw_on_a_positive_pixel(tmp_path):
    store, rows = write_positive_store(tmp_path)
    ds = PatchDataset(store, rows, mean=[0.0, 0.0], std=[1.0, 1.0], positive=1)
    i = 4  # the patch at row 32, col 32, which holds the positive pixel (40, 50)
    image, label, _ = ds[(i, 7 << CENTRE_SHIFT)]
    assert label[16, 16] == 1  # the centre pixel is the positive one
    assert image[0, 16, 16] == 40 * 96 + 50  # read from the moved window of the store
    plain, plain_label, _ = ds[(i, 0)]  # without a centre seed: the patch's own window
    assert plain_label[8, 18] == 1 and plain[0, 0, 0] == 32 * 96 + 32
    negative, _, _ = PatchDataset(store, rows, [0.0, 0.0], [1.0, 1.0])[(i, 7 << CENTRE_SHIFT)]
    np.testing.assert_array_equal(negative, plain)  # no positive class: never moved


def test_moved_window_masks_what_lies_outside_the_training_patches(tmp_path):
    store, rows = write_positive_store(tmp_path)
    train = rows[~((rows["row"] == 0) & (rows["col"] == 32))]  # that patch is not training
    ds = PatchDataset(store, train, mean=[0.0, 0.0], std=[1.0, 1.0], positive=1)
    i = int(np.flatnonzero((train["row"] == 32) & (train["col"] == 32))[0])
    image, label, _ = ds[(i, 9 << CENTRE_SHIFT)]  # window at (24, 34)
    assert label[16, 16] == 1
    assert (label[:8, :30] == IGNORE).all() and (image[:, :8, :30] == 0).all()
    assert (label[:8, 30:] == 0).all() and (label[8:] != IGNORE).all()
