"""The patch store: per-area arrays that patches are windows of, memory-mapped and checked.

A store is ``results/patches/{area}/images.npy`` (the whole aligned area, pixel-interleaved
``(H, W, bands)`` in ``patches.dtype``, float16 by default, NaN where the image has no
data) and ``labels.npy`` (uint8 ``(H, W)``, 255 where a pixel is not valid). A patch is
the window ``row, col, size`` of its index row: each pixel is stored once whatever the
stride, and reading a patch reads its window (no decompression, no copy of the area).
Pixel-interleaved so that a window is ``size`` runs of ``size x bands`` values, and a
pixel's bands lie together (the per-pixel model reads them so). Every reader opens the
arrays here, with errors that name the file and the rule to rerun.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt
import pandas as pd

from landcover.classes import IGNORE
from landcover.errors import ConfigError, DataError
from landcover.io import read_json

log = logging.getLogger(__name__)

DTYPES = ("float16", "float32")
"""Types of ``images.npy`` (``patches.dtype``)."""

FLOAT16_MAX = float(np.finfo(np.float16).max)


@dataclass(frozen=True)
class Store:
    """The two arrays of an area's patch store (declared inputs of the rules that read them)."""

    images: Path
    labels: Path


Stores = Mapping[str, Store]
"""Area name -> its store."""


def stores(
    areas: Sequence[str], images: Sequence[str | Path], labels: Sequence[str | Path]
) -> dict[str, Store]:
    """Pair each area with its arrays (three lists in the same order, as rules declare them)."""
    if not len(areas) == len(images) == len(labels):
        raise ValueError(f"{len(areas)} areas, {len(images)} image and {len(labels)} label arrays")
    return {
        str(a): Store(Path(i), Path(lab)) for a, i, lab in zip(areas, images, labels, strict=True)
    }


def open_images(store: Store) -> np.ndarray:
    """Memory-map an area's ``images.npy``, ``(H, W, bands)`` (nothing is read until indexed)."""
    return _open(store.images, "patch images")


def open_labels(store: Store) -> np.ndarray:
    """Memory-map an area's ``labels.npy``, ``(H, W)``."""
    return _open(store.labels, "patch labels")


def _open(path: Path, what: str) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r")
    except (OSError, ValueError) as err:
        raise DataError(
            f"Cannot read {what} '{path}': {err}. Rerun tile_area for that area "
            "(snakemake --forcerun tile_area)."
        ) from err


def window_image(images: np.ndarray, row: int, col: int, size: int) -> np.ndarray:
    """A patch's image: float32 ``(bands, size, size)``, read from its window (pure)."""
    block = images[row : row + size, col : col + size]
    return np.asarray(block, dtype=np.float32).transpose(2, 0, 1)


def window_labels(labels: np.ndarray, row: int, col: int, size: int) -> np.ndarray:
    """A patch's labels: a uint8 ``(size, size)`` copy of its window (pure)."""
    return np.array(labels[row : row + size, col : col + size])


def windows(rows: pd.DataFrame) -> Iterator[tuple[int, int, int]]:
    """``(row, col, size)`` of each index row, in order."""
    yield from zip(
        rows["row"].to_numpy(np.int64).tolist(),
        rows["col"].to_numpy(np.int64).tolist(),
        rows["size"].to_numpy(np.int64).tolist(),
        strict=True,
    )


def coverage(rows: pd.DataFrame, shape: tuple[int, int]) -> np.ndarray:
    """Boolean ``(H, W)``: the pixels inside any of these patches' windows (pure)."""
    covered = np.zeros(shape, dtype=bool)
    for row, col, size in windows(rows):
        covered[row : row + size, col : col + size] = True
    return covered


def to_store_dtype(block: np.ndarray, dtype: str, area: str) -> np.ndarray:
    """``block`` in the store's ``dtype``; a value float16 cannot hold is an error.

    float16 keeps reflectance to about 1e-4 (a tenth of a DN of Sentinel-2 L2A) below 1
    and holds values up to 65504; NaN stays NaN.

    Raises:
        ConfigError: ``dtype`` is not one of :data:`DTYPES`.
        DataError: a finite value beyond float16's range (naming the area and the fix).

    """
    if dtype not in DTYPES:
        raise ConfigError(f"patches.dtype must be one of {list(DTYPES)}, got {dtype!r}.")
    if dtype == "float16":
        finite = np.abs(block[np.isfinite(block)])
        if finite.size and float(finite.max()) > FLOAT16_MAX:
            raise DataError(
                f"Area '{area}': the aligned image holds {float(finite.max()):g}, beyond "
                f"float16's {FLOAT16_MAX:g}. Scale the imagery to reflectance "
                "(`imagery.scale`) or set `patches.dtype: float32`, then rerun tile_area."
            )
    return block.astype(dtype, copy=False)


class NpyWriter:
    """Write an ``.npy`` array row by row (first axis) with plain buffered writes.

    Not a memory map (``open_memmap``): its file is sparse until written, so a full disk
    strikes while a page is stored and SIGBUS kills the process with no message and its
    temporary files left behind. A plain write fails with ENOSPC instead, which
    :func:`landcover.io.atomic_path` turns into an error naming the file.
    """

    def __init__(self, file: BinaryIO, dtype: npt.DTypeLike, shape: Sequence[int]) -> None:
        """Write the header of a C-ordered ``dtype`` array of ``shape`` to ``file``."""
        self._file = file
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(n) for n in shape)
        self.rows = 0
        header = {
            "descr": np.lib.format.dtype_to_descr(self.dtype),
            "fortran_order": False,
            "shape": self.shape,
        }
        np.lib.format.write_array_header_1_0(file, header)

    def append(self, row: np.ndarray) -> None:
        """Write the next row (cast to the array's type, as assigning into it would)."""
        data = np.ascontiguousarray(row, dtype=self.dtype)
        if data.shape != self.shape[1:] or self.rows >= self.shape[0]:
            raise ValueError(f"row {self.rows} of shape {data.shape} for an array {self.shape}")
        self._file.write(data.data)
        self.rows += 1

    def extend(self, rows: np.ndarray) -> None:
        """Write the next ``len(rows)`` rows at once."""
        data = np.ascontiguousarray(rows, dtype=self.dtype)
        if data.shape[1:] != self.shape[1:] or self.rows + len(data) > self.shape[0]:
            raise ValueError(f"rows {self.rows}+{len(data)} of {data.shape} for {self.shape}")
        self._file.write(data.data)
        self.rows += len(data)

    def finish(self) -> None:
        """Check that every row was written (a short file would not load)."""
        if self.rows != self.shape[0]:
            raise ValueError(f"{self.rows} rows written of {self.shape[0]}")


def check_labels(stores: Stores, rows: pd.DataFrame, n_classes: int) -> None:
    """Check that the labels of these areas hold only class indices or 255.

    Reads each area's label array (uint8: small next to the images) in strips.

    Raises:
        DataError: a label value is >= the number of configured classes.

    """
    for area in sorted(rows["area"].astype(str).unique()):
        labels = open_labels(stores[area])
        values: set[int] = set()
        for top in range(0, labels.shape[0], 1024):
            values.update(int(v) for v in np.unique(np.asarray(labels[top : top + 1024])))
        bad = sorted(v for v in values if v >= n_classes and v != IGNORE)
        if bad:
            raise DataError(
                f"{stores[area].labels}: label values {bad} exceed "
                f"the {n_classes} configured classes; the patch store was made with another "
                "class map. Rerun align_area and tile_area (snakemake --forcerun align_area)."
            )


def check_arrays(stores: Stores, rows: pd.DataFrame, bands: Sequence[str]) -> int:
    """Check each area's arrays against the bands and the index; return the patch size."""
    sizes = set(int(s) for s in rows["size"].unique()) if "size" in rows else set()
    for area, group in rows.groupby("area", sort=True):
        store = stores[str(area)]
        images, labels, path = open_images(store), open_labels(store), store.images
        if images.ndim != 3:
            raise DataError(
                f"{path}: expected the area's pixels (H, W, bands), got shape {images.shape} "
                "(a store of an older version?); rerun tile_area (snakemake --forcerun "
                "tile_area)."
            )
        if images.shape[2] != len(bands):
            raise ConfigError(
                f"imagery.bands lists {len(bands)} bands {list(bands)} (the model's in_channels) "
                f"but {path} has {images.shape[2]} channels: the patches were made with other "
                "bands. Restore `imagery.bands`, or rerun from acquire_imagery "
                "(snakemake --forcerun acquire_imagery)."
            )
        if labels.shape != images.shape[:2]:
            raise DataError(
                f"{path}: labels.npy has shape {labels.shape}, images.npy {images.shape}; "
                "rerun tile_area for this area."
            )
        bottom, right = group["row"] + group["size"], group["col"] + group["size"]
        inside = (group["row"] >= 0) & (group["col"] >= 0)
        inside &= (bottom <= images.shape[0]) & (right <= images.shape[1])
        if not inside.all():
            raise DataError(
                f"{path}: the index has patch windows outside the area's {images.shape[1]} x "
                f"{images.shape[0]} px; rerun tile_area and split_patches."
            )
    if len(sizes) != 1:
        raise DataError(
            f"patch stores of {sorted(map(str, stores))}: areas have different patch sizes "
            f"{sorted(sizes)}; rerun tile_area for every area (snakemake --forcerun tile_area)."
        )
    return sizes.pop()


@dataclass
class TrainingData:
    """What training needs from the patch store, checked against the config."""

    train: pd.DataFrame
    val: pd.DataFrame
    class_weights: list[float]
    patch_size: int
    index_sha256: str


def load_training_data(
    stores: Stores,
    index: str | Path,
    class_weights: str | Path,
    bands: Sequence[str],
    classes: Sequence[str],
) -> TrainingData:
    """Read the patch index and class weights and check them and the stores against the config.

    Every model kind trains on what this returns; ``val`` falls back to the holdout
    patches (with a warning) when the split has no validation patches.

    Raises:
        ConfigError: bands or classes of the config differ from the patch store's.
        DataError: missing or inconsistent files, no train patches, no validation patches.

    """
    index = Path(index)
    try:
        table = pd.read_parquet(index)
    except (OSError, ValueError) as err:
        raise DataError(
            f"Cannot read the patch index '{index}': {err}. Rerun split_patches."
        ) from err
    missing = [c for c in ("area", "patch", "split") if c not in table.columns]
    if missing:
        raise DataError(
            f"{index}: columns {missing} are missing; rerun split_patches to rebuild the index."
        )
    count_cols = [c for c in table.columns if c.startswith("count_")]
    store_classes = [c.removeprefix("count_") for c in count_cols]
    if store_classes != list(classes):
        raise ConfigError(
            f"classes: the config lists {list(classes)} but the patch index {index} was made "
            f"with {store_classes}. The class map changed since the patches were made: "
            "rerun from align_area (snakemake --forcerun align_area), or restore `classes`."
        )
    weights_doc = read_json(class_weights, "class weights", "rerun class_weights")
    if list(weights_doc.get("classes", [])) != list(classes):
        raise ConfigError(
            f"classes: the config lists {list(classes)} but {class_weights} has "
            f"{weights_doc.get('classes')}; rerun class_weights (snakemake --forcerun "
            "class_weights) after changing classes."
        )
    weights = [float(w) for w in weights_doc.get("weights", [])]
    if len(weights) != len(classes) or not all(math.isfinite(w) and w >= 0 for w in weights):
        raise DataError(
            f"{class_weights}: 'weights' must hold {len(classes)} finite numbers >= 0, got "
            f"{weights_doc.get('weights')}; rerun class_weights."
        )

    train = table[table["split"] == "train"].reset_index(drop=True)
    val = table[table["split"] == "val"].reset_index(drop=True)
    if train.empty:
        raise DataError(
            f"{index}: no patch has split 'train'; check `holdout` (not every area may be held "
            "out), `split.val_fraction` and `patches.min_valid`, then rerun split_patches."
        )
    if val.empty:
        val = table[table["split"] == "holdout"].reset_index(drop=True)
        if val.empty:
            raise DataError(
                f"{index}: no 'val' or 'holdout' patches to validate on; set "
                "`split.val_fraction` > 0 or list a `holdout` area, then rerun split_patches."
            )
        log.warning(
            "%s has no 'val' patches: validating on the %d 'holdout' patches instead "
            "(set split.val_fraction > 0 to keep the holdout for evaluation only).",
            index,
            len(val),
        )

    patch_size = check_arrays(stores, pd.concat([train, val]), bands)
    check_labels(stores, pd.concat([train, val]), len(classes))
    return TrainingData(
        train=train,
        val=val,
        class_weights=weights,
        patch_size=patch_size,
        index_sha256=hashlib.sha256(index.read_bytes()).hexdigest(),
    )
