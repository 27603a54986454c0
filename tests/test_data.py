"""Patch dataset, augmentation, sampling, band statistics and losses."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from _patchstore import make_patch_store

from landcover.models.segmentation.data import (
    EpochSampler,
    PatchDataset,
    band_stats,
    dihedral,
    normalise,
    rare_class_weights,
)
from landcover.models.segmentation.losses import SegmentationLoss


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return make_patch_store(tmp_path_factory.mktemp("patches"), size=32)


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


def test_band_stats_match_numpy(store):
    table = pd.read_parquet(store["index"])
    train = table[table["split"] == "train"]
    mean, std = band_stats(store["stores"], train, chunk=5)
    stack = np.concatenate(
        [
            np.load(store["patches_dir"] / area / "images.npy")[g["patch"].to_numpy()]
            for area, g in train.groupby("area")
        ]
    )
    np.testing.assert_allclose(mean, np.nanmean(stack, axis=(0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(std, np.nanstd(stack, axis=(0, 2, 3)), rtol=1e-4)


def test_dataset_reads_normalised_patch(store):
    table = pd.read_parquet(store["index"])
    rows = table[table["area"] == "b"].iloc[[2, 5]]
    ds = PatchDataset(store["stores"], rows, mean=[0.1] * 4, std=[0.5] * 4)
    image, label, i = ds[(1, 3)]
    raw = np.load(store["patches_dir"] / "b" / "images.npy")[5]
    expected = dihedral(np.nan_to_num((raw - 0.1) / 0.5), 3)
    np.testing.assert_allclose(image.numpy(), expected, rtol=1e-6)
    raw_label = np.load(store["patches_dir"] / "b" / "labels.npy")[5]
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


def test_loss_matches_weighted_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 4)
    target = torch.randint(0, 3, (2, 4, 4))
    target[0, 0] = 255
    weights = torch.tensor([1.0, 2.0, 0.5])
    loss, per_sample = SegmentationLoss(weights, ce_weight=1, dice_weight=0, focal_gamma=0.0)(
        logits, target
    )
    expected = F.cross_entropy(logits, target, weight=weights, ignore_index=255)
    torch.testing.assert_close(loss, expected)
    assert per_sample.shape == (2,)


def test_focal_and_dice_terms():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    target = torch.randint(0, 3, (2, 4, 4))
    ce, _ = SegmentationLoss(None, 1, 0, 0.0)(logits, target)
    focal, _ = SegmentationLoss(None, 1, 0, 2.0)(logits, target)
    assert focal < ce
    mixed, _ = SegmentationLoss(None, 1, 0.5, 0.0)(logits, target)
    mixed.backward()
    assert mixed > ce and logits.grad is not None


def test_loss_of_fully_ignored_batch_is_zero():
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    target = torch.full((1, 4, 4), 255)
    loss, per_sample = SegmentationLoss([1.0, 1.0, 1.0], 1.0, 0.5, 0.0)(logits, target)
    loss.backward()
    assert float(loss.detach()) == 0.0 and float(per_sample[0]) == 0.0
