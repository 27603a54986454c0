"""Training data of the segmentation models: normalisation, augmentation, dataset and sampler.

A patch is its window of the area's memory-mapped store: no decompression and no copy
of the area (:mod:`landcover.prepare.store`). :func:`prepare_data` checks the store,
the index and the class weights against the settings before any training.

Binary and rare-class tasks (``training.positive_fraction``): the sampler draws that
share of each epoch from the patches that hold the positive class and the rest from the
others, hard negatives first (:func:`negative_draws`); the dataset moves each positive
draw's window so that a pixel of the class is at its centre (:func:`centred_window`),
masking what the moved window sees beyond the training patches (:func:`window_mask`).
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

from landcover.classes import IGNORE
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

CENTRE_SHIFT = 40
"""A key's transform code holds, from this bit up, the seed of the positive pixel its
window is centred on (0: not centred); below it, ``N_DIHEDRAL * jitter seed + dihedral``
(jitter seeds are below 2**31, so they stay below this bit)."""

CENTRE_SEEDS = 2**20
"""Centre seeds are drawn in ``[1, CENTRE_SEEDS)``."""


def split_code(code: int) -> tuple[int, int, int]:
    """A transform code's ``(dihedral transform, jitter seed, centre seed)`` (0: none)."""
    code = int(code)
    low = code & ((1 << CENTRE_SHIFT) - 1)
    return low % N_DIHEDRAL, low // N_DIHEDRAL, code >> CENTRE_SHIFT


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


def positive_pixel(labels: np.ndarray, positive: int, seed: int) -> tuple[int, int] | None:
    """A random pixel ``(row, col)`` of class ``positive`` in ``labels``; None if it has none."""
    rows, cols = np.nonzero(labels == positive)
    if not len(rows):
        return None
    pick = int(np.random.default_rng(seed).integers(len(rows)))
    return int(rows[pick]), int(cols[pick])


def centred_window(
    row: int, col: int, size: int, pixel: tuple[int, int], shape: tuple[int, int]
) -> tuple[int, int]:
    """Top-left of the ``size`` window whose centre is ``pixel`` of the window at ``row, col``.

    The centre of a window is its pixel ``(size // 2, size // 2)``. The window is clamped
    to the area (``shape``: its height and width), so near the edge the pixel is off-centre.
    """
    top = row + pixel[0] - size // 2
    left = col + pixel[1] - size // 2
    return (
        int(min(max(top, 0), shape[0] - size)),
        int(min(max(left, 0), shape[1] - size)),
    )


def window_mask(row: int, col: int, size: int, windows: np.ndarray) -> np.ndarray:
    """Boolean ``(size, size)``: the pixels of a window inside any of ``windows`` (pure).

    Args:
        row: top of the window.
        col: left of the window.
        size: its side.
        windows: ``(N, 3)`` ``row, col, size`` of the windows that may be seen.

    """
    mask = np.zeros((size, size), dtype=bool)
    windows = np.asarray(windows, dtype=np.int64).reshape(-1, 3)
    top = np.clip(windows[:, 0] - row, 0, size)
    left = np.clip(windows[:, 1] - col, 0, size)
    bottom = np.clip(windows[:, 0] + windows[:, 2] - row, 0, size)
    right = np.clip(windows[:, 1] + windows[:, 2] - col, 0, size)
    hit = (top < bottom) & (left < right)  # the few windows that meet this one
    for t, lft, b, r in zip(top[hit], left[hit], bottom[hit], right[hit], strict=True):
        mask[t:b, lft:r] = True
    return mask


class PatchDataset(Dataset):
    """Patches of the store, normalised, optionally transformed.

    Items are keyed ``(i, code)``: row ``i`` of ``rows`` and the transform ``code``
    (chosen by the sampler, :func:`split_code`): ``code % 8`` is the dihedral transform,
    the bits above (when above 0 and ``jitter`` is set) the seed of the patch's
    radiometric jitter (:func:`jitter_bands`), and from bit :data:`CENTRE_SHIFT` up
    (when above 0 and ``positive`` is set) the seed of the pixel of class ``positive``
    that the window is moved to centre on (:func:`centred_window`). A moved window
    keeps only what lies inside the dataset's own windows (the training patches): the
    rest is read as nodata with ignored labels, so it never shows a validation or test
    pixel. A plain ``i`` means no transform. An item is ``(image float32 (C, P, P),
    label uint8 (P, P), i)``; the index lets the training loop credit each patch with
    its loss (hard-example mining).

    Memory maps are opened lazily in each process and never pickled to workers.
    """

    def __init__(
        self,
        stores: Stores,
        rows: pd.DataFrame,
        mean: Sequence[float],
        std: Sequence[float],
        jitter: float = 0.0,
        positive: int | None = None,
    ) -> None:
        """Create the dataset.

        Args:
            stores: the areas' patch stores.
            rows: index rows with ``area`` and the window ``row``, ``col``, ``size``.
            mean: per-band mean for ``normalise``.
            std: per-band standard deviation.
            jitter: strength of the radiometric jitter of keys that carry a seed (0: off).
            positive: index of the class that keys with a centre seed centre on (None:
                windows are never moved).

        """
        self.stores = dict(stores)
        self.areas = [str(a) for a in rows["area"]]
        self.windows = rows[["row", "col", "size"]].to_numpy(dtype=np.int64)
        self.mean = [float(v) for v in mean]
        self.std = [float(v) for v in std]
        self.jitter = float(jitter)
        self.positive = positive
        names = np.asarray(self.areas, dtype=object)
        self.area_windows = {a: self.windows[names == a] for a in dict.fromkeys(self.areas)}
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

    def window(self, i: int, centre_seed: int) -> tuple[int, int, int, np.ndarray | None]:
        """Patch ``i``'s window, centred on a positive pixel when ``centre_seed`` asks.

        Returns:
            ``row, col, size`` and, for a moved window, the mask of its pixels inside
            the dataset's windows (None: the patch's own window, all of it seen).

        """
        row, col, size = (int(v) for v in self.windows[i])
        if not centre_seed or self.positive is None:
            return row, col, size, None
        area = self.areas[i]
        labels = self._arrays(area)[1]
        pixel = positive_pixel(window_labels(labels, row, col, size), self.positive, centre_seed)
        if pixel is None:
            return row, col, size, None
        top, left = centred_window(row, col, size, pixel, labels.shape[:2])
        if (top, left) == (row, col):
            return row, col, size, None
        return top, left, size, window_mask(top, left, size, self.area_windows[area])

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Read, normalise and transform one patch."""
        i, code = (key, 0) if isinstance(key, int | np.integer) else key
        turn, jitter_seed, centre_seed = split_code(code)
        images, labels = self._arrays(self.areas[i])
        row, col, size, seen = self.window(i, centre_seed)
        image = window_image(images, row, col, size)
        label = window_labels(labels, row, col, size)
        if seen is not None:  # (the image may be a view of a float32 store: no writes)
            image = np.where(seen, image, np.float32(np.nan))
            label = np.where(seen, label, np.uint8(IGNORE))
        if self.jitter > 0 and jitter_seed:
            image = jitter_bands(image, self.jitter, jitter_seed)
        image = normalise(image, self.mean, self.std)
        if turn:
            image = dihedral(image, turn)
            label = dihedral(label, turn)
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


def check_positive_class(name: str | None, classes: Sequence[str]) -> None:
    """``training.positive_class`` must be null or a class name.

    Raises:
        ConfigError: naming the key, the classes and the fix.

    """
    names = [str(c) for c in classes]
    if name is not None and name not in names:
        raise ConfigError(
            f"training.positive_class: '{name}' is not one of the classes {names}; give "
            "one of their names, or null for the rarest class of the training patches."
        )


def positive_class_index(counts: np.ndarray, classes: Sequence[str], name: str | None) -> int:
    """The index of the positive class: ``name``, or the rarest class with pixels in ``counts``.

    Args:
        counts: ``(N, K)`` pixel counts per patch and class (the train patches' ``count_*``).
        classes: the class names, in index order.
        name: ``training.positive_class`` (None: the rarest class present).

    Raises:
        ConfigError: ``name`` is not a class.
        DataError: no class has a pixel in ``counts``.

    """
    names = [str(c) for c in classes]
    if name is not None:
        check_positive_class(name, names)
        return names.index(name)
    totals = np.asarray(counts, dtype=np.float64).reshape(-1, len(names)).sum(0)
    present = np.flatnonzero(totals > 0)
    if not present.size:
        raise DataError(
            "training.positive_fraction: the training patches hold no labelled pixel, so "
            "there is no positive class; check the patch index (rerun split_patches)."
        )
    return int(present[np.argmin(totals[present])])


def negative_draws(
    negatives: np.ndarray,
    losses: np.ndarray,
    count: int,
    hard_share: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Draw ``count`` negative patches: the hardest first, then random ones.

    Args:
        negatives: indices of the negative patches.
        losses: every patch's latest training loss (NaN: not seen yet).
        count: how many to draw.
        hard_share: the share of ``count`` taken as the negatives of highest loss, each
            once (at most as many as have a loss; ties in index order).
        rng: the epoch's generator.

    Returns:
        int64 indices: the hard negatives, hardest first, then the random ones (without
        replacement while there are enough negatives).

    """
    negatives = np.asarray(negatives, dtype=np.int64)
    if count <= 0 or not len(negatives):
        return np.zeros(0, dtype=np.int64)
    seen = negatives[np.isfinite(losses[negatives])]
    n_hard = min(round(hard_share * count), len(seen))
    hard = seen[np.argsort(-losses[seen], kind="stable")[:n_hard]]
    n_random = count - n_hard
    random = rng.choice(negatives, size=n_random, replace=n_random > len(negatives))
    return np.concatenate([hard, random]).astype(np.int64)


class EpochSampler(Sampler):
    """Draws each epoch's patches and their dihedral transforms from ``(seed, epoch)``.

    Without oversampling or hard mining an epoch is a permutation of all patches.
    With them, it draws as many patches with replacement, with probability
    ``(1 - hard) * base + hard * loss-proportional``, where ``base`` comes from the
    rare-class weights and the losses are each patch's latest training loss.

    With ``positive_fraction``, ``round(positive_fraction * n)`` draws (at least one)
    come from the ``positives`` (with the probabilities above, restricted to them) and
    carry a centre seed (:data:`CENTRE_SHIFT`: the dataset centres their window on a
    positive pixel); the others are negatives (:func:`negative_draws`: a
    ``hard_negatives`` share of them the negatives of highest latest loss); the epoch
    is their shuffle.

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
        positives: boolean ``(n,)``: the patches that hold the positive class.
        positive_fraction: share of each epoch's draws made from ``positives`` (0: off).
        hard_negatives: share of the negative draws taken as the hardest negatives.

    Raises:
        ValueError: ``positive_fraction`` without positive patches.

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
        positives: np.ndarray | None = None,
        positive_fraction: float = 0.0,
        hard_negatives: float = 0.0,
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
        self.positives = np.zeros(n, bool) if positives is None else np.asarray(positives, bool)
        self.positive_fraction = float(positive_fraction)
        self.hard_negatives = float(hard_negatives)
        if self.positive_fraction > 0 and not self.positives.any():
            raise ValueError("positive_fraction > 0 needs at least one positive patch")
        self.epoch = 0
        self.losses = np.full(n, np.nan)  # latest training loss per patch (NaN: not seen)

    @property
    def uniform(self) -> bool:
        """True when epochs are plain permutations."""
        return self.base is None and self.hard_fraction <= 0 and self.positive_fraction <= 0

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

    def positive_draws(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The epoch's positive and negative draws, shuffled, and which are positive."""
        positives = np.flatnonzero(self.positives)
        negatives = np.flatnonzero(~self.positives)
        n_pos = self.n if not len(negatives) else round(self.positive_fraction * self.n)
        n_pos = min(max(n_pos, 1), self.n)
        p = self.probabilities()[positives]
        drawn = rng.choice(positives, size=n_pos, replace=True, p=p / p.sum())
        negative = negative_draws(negatives, self.losses, self.n - n_pos, self.hard_negatives, rng)
        order = np.concatenate([drawn, negative])
        centred = np.arange(self.n) < n_pos
        shuffle = rng.permutation(self.n)
        return order[shuffle], centred[shuffle]

    def draws(self) -> tuple[np.ndarray, np.ndarray]:
        """All ranks' draws for the current epoch: patch indices and transform codes."""
        rng = np.random.default_rng([self.seed, self.epoch])
        centred = None
        if self.positive_fraction > 0:
            order, centred = self.positive_draws(rng)
        elif self.uniform:
            order = rng.permutation(self.n)
        else:
            order = rng.choice(self.n, size=self.n, replace=True, p=self.probabilities())
        codes = rng.integers(0, N_DIHEDRAL, size=self.n) if self.augment else np.zeros(self.n)
        codes = codes.astype(np.int64)
        if self.jitter:  # drawn last: the order and transforms stay those of no jitter
            codes = codes + N_DIHEDRAL * rng.integers(1, 2**31, size=self.n)
        if centred is not None:  # the positives' centre seeds, after all the rest
            seeds = rng.integers(1, CENTRE_SEEDS, size=self.n, dtype=np.int64)
            codes = codes + np.where(centred, seeds, 0) * (1 << CENTRE_SHIFT)
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
