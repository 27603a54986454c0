"""A synthetic scene without Earth coordinates: bright craters on dark ground, and its mask.

The example of ``config/pixels.yaml`` (areas as pixel windows of files without a CRS, a
binary task with a rare positive class), of ``config/chips.yaml`` (folders of PNG chips)
and of the tests. Writes ``scene.tif`` (one uint8 band, no CRS, no geotransform, as a
planetary or microscope image comes) and ``scene_mask.tif`` (1 ground, 2 crater, 0 no
mask), or with ``--chips`` folders ``{area}/images/{id}.png`` (RGB) and
``{area}/masks/{id}_mask.png`` (areas train and test), and ``unlabelled/images/{id}.png``
without masks (a test set to map only, ``labelled: false``):

    python -m landcover.sources.demo.craters resources/craters
    python -m landcover.sources.demo.craters --chips resources/chips
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import rasterio


def crater_scene(
    height: int, width: int, craters: int, seed: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """The image (uint8) and mask (uint8: 1 ground, 2 crater, 0 none) of a scene (pure).

    ``craters`` bright discs of radius 3 to 7 px on dark ground, with noise; a 6 px
    column strip has no mask.
    """
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width]
    mask = np.ones((height, width), np.uint8)
    for _ in range(craters):
        r, c = rng.integers(8, height - 8), rng.integers(8, width - 8)
        radius = rng.integers(3, 8)
        mask[(rows - r) ** 2 + (cols - c) ** 2 <= radius**2] = 2
    strip = width * 15 // 32
    mask[:, strip : strip + 6] = 0
    image = np.where(mask == 2, 180, 60) + rng.normal(0, 12, mask.shape)
    return np.clip(image, 1, 255).astype(np.uint8), mask


def write_craters(
    folder: str | Path, height: int = 128, width: int = 384, craters: int = 40
) -> tuple[Path, Path]:
    """Write ``scene.tif`` and ``scene_mask.tif`` into ``folder``; return their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    image, mask = crater_scene(height, width, craters)
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 1, "dtype": "uint8"}
    paths = folder / "scene.tif", folder / "scene_mask.tif"
    with rasterio.open(paths[0], "w", **profile) as dst:  # no crs, no transform
        dst.write(image, 1)
    with rasterio.open(paths[1], "w", **profile, nodata=0) as dst:
        dst.write(mask, 1)
    return paths


def write_crater_chips(
    folder: str | Path,
    areas: dict[str, int] | None = None,
    size: int = 64,
    unlabelled: dict[str, int] | None = None,
) -> list[Path]:
    """Write PNG chips of crater scenes: per area ``{n}`` RGB images and their masks.

    ``areas``: area -> number of chips (default train 24, test 8); each chip is a crater
    scene of its own (another seed), the mask codes 1 ground and 2 crater.
    ``unlabelled``: area -> number of image chips written without masks (default
    unlabelled 8; ``{}`` for none): no ``masks`` folder at all.
    """
    folder = Path(folder)
    areas = {"train": 24, "test": 8} if areas is None else areas
    unlabelled = {"unlabelled": 8} if unlabelled is None else unlabelled
    written = []
    every = [(area, count, True) for area, count in areas.items()]
    every += [(area, count, False) for area, count in unlabelled.items()]
    for a, (area, count, with_masks) in enumerate(every):
        for i in range(count):
            image, mask = crater_scene(size, size, craters=3, seed=1000 * a + i)
            mask[mask == 0] = 1  # a chip's mask covers it whole
            rgb = np.stack([image, image, (image * 0.8).astype(np.uint8)])
            files = [(folder / area / "images" / f"chip{i:03d}.png", rgb)]
            if with_masks:
                files.append((folder / area / "masks" / f"chip{i:03d}_mask.png", mask[None]))
            for path, data in files:
                path.parent.mkdir(parents=True, exist_ok=True)
                profile = {"driver": "PNG", "width": size, "height": size, "dtype": "uint8"}
                with rasterio.open(path, "w", **profile, count=len(data)) as dst:
                    dst.write(data)
                written.append(path)
    return written


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="where to write scene.tif and scene_mask.tif")
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=1536)
    parser.add_argument("--craters", type=int, default=600)
    parser.add_argument("--chips", action="store_true", help="write folders of PNG chips")
    args = parser.parse_args()
    if args.chips:
        written = write_crater_chips(args.folder)
        print(f"{len(written)} image and mask chips in {args.folder} (unlabelled/: no masks)")
    else:
        for path in write_craters(args.folder, args.height, args.width, args.craters):
            print(path)
