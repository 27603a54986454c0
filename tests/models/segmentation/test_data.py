"""Patch dataset, augmentation, sampling and band statistics (segmentation.data).

The patches come from the session's tiny synthetic store (the ``patch_store`` fixture).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from landcover.models.segmentation.data import (
    EpochSampler,
    PatchDataset,
    band_stats,
    dihedral,
    jitter_bands,
    normalise,
    rare_class_weights,
)


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
