"""Training data of the segmentation models: normalisation, augmentation, dataset and sampler.

A patch is its window of the area's memory-mapped store: no decompression and no copy
of the area (:mod:`landcover.prepare.store`). :func:`prepare_data` checks the store,
the index and the class weights against the settings before any training.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, Sampler

from landcover.errors import ConfigError, DataError
from landcover.models.segmentation.nets import OUTPUT_STRIDE
from landcover.prepare.store import (
    Stores,
    coverage,
    load_training_data,
    open_images,
    open_labels,
    window_image,
    window_labels,
)

log = logging.getLogger(__name__)


N_DIHEDRAL = 8
"""Transforms of the square's symmetry group: 4 rotations x (flip or not)."""


def normalise(images: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Standardise bands and set invalid (NaN) pixels to 0, the band mean.

    Args:
        images: ``(..., C, H, W)`` reflectance, NaN where invalid.
        mean: per-band mean (from the training patches).
        std: per-band standard deviation.

    Returns:
        float32 array of the same shape without NaN.

    """
    shape = (len(mean), 1, 1)
    m = np.asarray(mean, dtype=np.float32).reshape(shape)
    s = np.asarray(std, dtype=np.float32).reshape(shape)
    out = (np.asarray(images, dtype=np.float32) - m) / s
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


def jitter_bands(image: np.ndarray, strength: float, seed: int) -> np.ndarray:
    """Scale each band by a gain ``N(1, strength)`` and shift it by ``N(0, strength / 10)``.

    A radiometric augmentation: areas, dates and sensors differ by a few percent per
    band (atmosphere, calibration, phenology), and a network that has seen only its
    training areas' levels misreads a new area's classes. ``image`` is ``(C, H, W)``
    reflectance; NaN stays NaN. The same ``seed`` gives the same draw.
    """
    rng = np.random.default_rng(seed)
    gain = rng.normal(1.0, strength, image.shape[0]).astype(np.float32)
    offset = rng.normal(0.0, strength / 10, image.shape[0]).astype(np.float32)
    return image * gain[:, None, None] + offset[:, None, None]


def dihedral(array: np.ndarray, code: int) -> np.ndarray:
    """Apply dihedral transform ``code`` (0..7) to the last two axes; 0 is the identity."""
    out = np.rot90(array, k=code % 4, axes=(-2, -1))
    if code >= 4:
        out = out[..., ::-1]
    return out


def band_stats(
    stores: Stores, rows: pd.DataFrame, strip: int = 256
) -> tuple[list[float], list[float]]:
    """Per-band mean and standard deviation over the valid pixels of some patches.

    Each pixel inside any of the patches counts once (overlapping windows do not weigh
    their overlap twice). Streams each area in strips of rows (float64 sums), so memory
    stays bounded.

    Args:
        stores: the areas' patch stores.
        rows: index rows (``area``, ``row``, ``col``, ``size``) of the patches to use (the
            train split).
        strip: rows of the area per read.

    Raises:
        DataError: a band has no valid pixel in these patches.

    """
    total = sq = count = None
    for area, group in rows.groupby("area", sort=True):
        images = open_images(stores[str(area)])
        covered = coverage(group, images.shape[:2])
        for top in range(0, images.shape[0], strip):
            if not covered[top : top + strip].any():
                continue
            block = np.asarray(images[top : top + strip], dtype=np.float64)
            valid = np.isfinite(block) & covered[top : top + strip, :, None]
            block = np.where(valid, block, 0.0)
            s, q, n = block.sum((0, 1)), (block**2).sum((0, 1)), valid.sum((0, 1))
            total, sq, count = (s, q, n) if total is None else (total + s, sq + q, count + n)
    if total is None or (count == 0).any():
        raise DataError(
            f"patch stores of {sorted(map(str, stores))}: some band has no valid pixel in the "
            "training patches; check the aligned images (all NaN?) and `patches.min_valid`, "
            "then rerun tile_area."
        )
    mean = total / count
    std = np.sqrt(np.maximum(sq / count - mean**2, 0.0))
    std = np.where(std > 1e-6, std, 1.0)  # a constant band: leave it centred, unscaled
    return [float(v) for v in mean], [float(v) for v in std]


class PatchDataset(Dataset):
    """Patches of the store, normalised, optionally transformed.

    Items are keyed ``(i, code)``: row ``i`` of ``rows`` and the transform ``code``
    (chosen by the sampler): ``code % 8`` is the dihedral transform, ``code // 8`` (when
    above 0 and ``jitter`` is set) the seed of the patch's radiometric jitter
    (:func:`jitter_bands`); a plain ``i`` means no transform. An item is
    ``(image float32 (C, P, P), label uint8 (P, P), i)``; the index lets the training
    loop credit each patch with its loss (hard-example mining).

    Memory maps are opened lazily in each process and never pickled to workers.
    """

    def __init__(
        self,
        stores: Stores,
        rows: pd.DataFrame,
        mean: Sequence[float],
        std: Sequence[float],
        jitter: float = 0.0,
    ) -> None:
        """Create the dataset.

        Args:
            stores: the areas' patch stores.
            rows: index rows with ``area`` and the window ``row``, ``col``, ``size``.
            mean: per-band mean for ``normalise``.
            std: per-band standard deviation.
            jitter: strength of the radiometric jitter of keys that carry a seed (0: off).

        """
        self.stores = dict(stores)
        self.areas = [str(a) for a in rows["area"]]
        self.windows = rows[["row", "col", "size"]].to_numpy(dtype=np.int64)
        self.mean = [float(v) for v in mean]
        self.std = [float(v) for v in std]
        self.jitter = float(jitter)
        self._maps: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        """Return the number of patches."""
        return len(self.windows)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the memory maps (each worker opens its own)."""
        state = self.__dict__.copy()
        state["_maps"] = {}
        return state

    def _arrays(self, area: str) -> tuple[np.ndarray, np.ndarray]:
        if area not in self._maps:
            self._maps[area] = (
                open_images(self.stores[area]),
                open_labels(self.stores[area]),
            )
        return self._maps[area]

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Read, normalise and transform one patch."""
        i, code = (key, 0) if isinstance(key, int | np.integer) else key
        images, labels = self._arrays(self.areas[i])
        row, col, size = (int(v) for v in self.windows[i])
        image = window_image(images, row, col, size)
        if self.jitter > 0 and code >= N_DIHEDRAL:
            image = jitter_bands(image, self.jitter, code // N_DIHEDRAL)
        image = normalise(image, self.mean, self.std)
        label = window_labels(labels, row, col, size)
        if code % N_DIHEDRAL:
            image = dihedral(image, code % N_DIHEDRAL)
            label = dihedral(label, code % N_DIHEDRAL)
        return (
            torch.from_numpy(np.ascontiguousarray(image)),
            torch.from_numpy(np.ascontiguousarray(label)),  # a copy of the read-only map
            int(i),
        )


def rare_class_weights(counts: np.ndarray, strength: float, cap: float = 100.0) -> np.ndarray:
    """Compute sampling weights that draw patches holding rare classes more often.

    A patch's weight is ``r ** strength`` where ``r`` is the largest inverse frequency
    (relative to the most frequent class, capped at ``cap``) among the classes it holds.

    Args:
        counts: ``(N, K)`` pixel counts per patch and class (the ``count_*`` columns).
        strength: 0 gives uniform weights; 1 makes a patch with a 10x rarer class 10x
            more likely; 0.5 (square root) is a gentle middle.
        cap: largest rarity considered.

    Returns:
        float64 weights ``(N,)``, mean 1.

    """
    counts = np.asarray(counts, dtype=np.float64)
    if strength <= 0 or len(counts) == 0:
        return np.ones(len(counts))
    totals = counts.sum(0)
    rarity = np.where(totals > 0, totals.max() / np.maximum(totals, 1.0), 1.0)
    rarity = np.minimum(rarity, cap)
    patch_rarity = np.where(counts > 0, rarity[None, :], 1.0).max(1)
    weights = patch_rarity**strength
    return weights / weights.mean()


class EpochSampler(Sampler):
    """Draws each epoch's patches and their dihedral transforms from ``(seed, epoch)``.

    Without oversampling or hard mining an epoch is a permutation of all patches.
    With them, it draws as many patches with replacement, with probability
    ``(1 - hard) * base + hard * loss-proportional``, where ``base`` comes from the
    rare-class weights and the losses are each patch's latest training loss.

    Under DistributedDataParallel every rank draws the same global order and takes
    its share (``rank::world_size``), padded so that all ranks see equally many.

    Args:
        n: number of patches.
        seed: the run's seed.
        base_weights: per-patch sampling weights (``rare_class_weights``), or None.
        hard_fraction: share of draws made in proportion to the patch's loss (0..1).
        augment: draw a random dihedral transform per patch (else identity).
        jitter: also draw a seed of radiometric jitter per patch (the dataset's ``jitter``).
        rank: this process's rank.
        world_size: number of processes.

    """

    def __init__(
        self,
        n: int,
        seed: int,
        base_weights: np.ndarray | None = None,
        hard_fraction: float = 0.0,
        augment: bool = True,
        jitter: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        """Set up the sampler; see the class docstring for the arguments."""
        self.n = n
        self.seed = seed
        self.base = None if base_weights is None else np.asarray(base_weights, np.float64)
        self.hard_fraction = float(hard_fraction)
        self.augment = augment
        self.jitter = jitter
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.losses = np.full(n, np.nan)  # latest training loss per patch (NaN: not seen)

    @property
    def uniform(self) -> bool:
        """True when epochs are plain permutations."""
        return self.base is None and self.hard_fraction <= 0

    def __len__(self) -> int:
        """Draws per rank per epoch."""
        return math.ceil(self.n / self.world_size)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch (0-based) whose draws ``__iter__`` yields."""
        self.epoch = epoch

    def probabilities(self) -> np.ndarray:
        """Return the per-patch draw probabilities of the current epoch."""
        base = np.ones(self.n) if self.base is None else self.base
        p = base / base.sum()
        if self.hard_fraction > 0:
            seen = np.isfinite(self.losses)
            if seen.any():
                # unseen patches count as average-hard so that they get drawn at all
                loss = np.where(seen, self.losses, np.nanmean(self.losses))
                loss = np.maximum(loss, 1e-12)
                p = (1 - self.hard_fraction) * p + self.hard_fraction * loss / loss.sum()
        return p

    def draws(self) -> tuple[np.ndarray, np.ndarray]:
        """All ranks' draws for the current epoch: patch indices and transform codes."""
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.uniform:
            order = rng.permutation(self.n)
        else:
            order = rng.choice(self.n, size=self.n, replace=True, p=self.probabilities())
        codes = rng.integers(0, N_DIHEDRAL, size=self.n) if self.augment else np.zeros(self.n)
        if self.jitter:  # drawn last: the order and transforms stay those of no jitter
            codes = codes + N_DIHEDRAL * rng.integers(1, 2**31, size=self.n)
        total = len(self) * self.world_size
        pad = total - self.n
        if pad:
            order = np.concatenate([order, order[:pad]])
            codes = np.concatenate([codes, codes[:pad]])
        return order.astype(np.int64), codes.astype(np.int64)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        """Yield this rank's ``(patch, transform)`` keys for the current epoch."""
        order, codes = self.draws()
        sl = slice(self.rank, None, self.world_size)
        return iter(zip(order[sl].tolist(), codes[sl].tolist(), strict=True))

    def update_losses(self, indices: np.ndarray, losses: np.ndarray) -> None:
        """Record the latest training loss of patches (for hard-example mining)."""
        self.losses[np.asarray(indices, np.int64)] = np.asarray(losses, np.float64)


@dataclass
class PatchData:
    """The checked training data and the band normalisation of the train patches.

    See :class:`~landcover.prepare.store.TrainingData`.
    """

    train: pd.DataFrame
    val: pd.DataFrame
    class_weights: list[float]
    in_channels: int
    patch_size: int
    mean: list[float]
    std: list[float]
    index_sha256: str


def prepare_data(
    stores: Stores,
    index: str | Path,
    class_weights: str | Path,
    bands: Sequence[str],
    classes: Sequence[str],
) -> PatchData:
    """Load and check the training data; compute the band normalisation from the train patches.

    Raises:
        ConfigError: bands or classes of the config differ from the patch store's, or the
            patch size is not a multiple of the networks' output stride.
        DataError: missing or inconsistent files, no train patches, no validation patches.

    """
    data = load_training_data(stores, index, class_weights, bands, classes)
    if data.patch_size % OUTPUT_STRIDE:
        raise ConfigError(
            f"patches.size: patches are {data.patch_size} px, but the models halve the image "
            f"five times: use a multiple of {OUTPUT_STRIDE} (e.g. 64) and rerun tile_area."
        )
    mean, std = band_stats(stores, data.train)
    return PatchData(
        train=data.train,
        val=data.val,
        class_weights=data.class_weights,
        in_channels=len(bands),
        patch_size=data.patch_size,
        mean=mean,
        std=std,
        index_sha256=data.index_sha256,
    )
