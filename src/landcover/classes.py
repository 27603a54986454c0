"""The class map: source codes -> contiguous class indices, names and colours."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from landcover.errors import ConfigError, DataError

IGNORE = 255
"""Label value for pixels that carry no class (nodata, ignored or unmapped codes)."""


@dataclass(frozen=True)
class ClassMap:
    """Classes in index order with the source codes that map to them.

    Attributes:
        names: class names; a class's index is its position.
        codes: source codes per class (several codes merge into one class).
        colours: ``#RRGGBB`` per class.
        ignore_codes: source codes that become ``IGNORE`` (255).
    """

    names: tuple[str, ...]
    codes: tuple[tuple[int, ...], ...]
    colours: tuple[str, ...]
    ignore_codes: tuple[int, ...] = ()

    @classmethod
    def from_config(
        cls, classes: Sequence[Mapping[str, object]], ignore_codes: Sequence[int] = ()
    ) -> ClassMap:
        """Build from the config's ``classes`` list and ``ignore_codes``.

        Raises:
            ConfigError: when a code is used twice or a name repeats.
        """
        names = tuple(str(c["name"]) for c in classes)
        codes = tuple(tuple(int(v) for v in c["codes"]) for c in classes)  # type: ignore[union-attr]
        colours = tuple(str(c["colour"]) for c in classes)
        if len(set(names)) != len(names):
            raise ConfigError(f"classes: class names must be unique, got {list(names)}.")
        seen: dict[int, str] = {}
        for name, cs in zip(names, codes, strict=True):
            for code in cs:
                if code in seen or code in ignore_codes:
                    other = seen.get(code, "ignore_codes")
                    raise ConfigError(
                        f"classes: source code {code} is given to both '{other}' and '{name}'; "
                        "each code may map to one class or be in ignore_codes."
                    )
                seen[code] = name
        if len(names) > IGNORE:
            raise ConfigError(
                f"classes: at most {IGNORE} classes fit in uint8 labels, got {len(names)}."
            )
        return cls(names, codes, colours, tuple(int(c) for c in ignore_codes))

    def __len__(self) -> int:
        """Number of classes."""
        return len(self.names)

    def lookup_table(self, size: int = 65536) -> np.ndarray:
        """A table ``lut[code] -> index``; ignored codes give 255, unknown codes -1."""
        lut = np.full(size, -1, dtype=np.int16)
        for index, cs in enumerate(self.codes):
            lut[list(cs)] = index
        lut[list(self.ignore_codes)] = IGNORE
        return lut

    def remap(
        self, codes: np.ndarray, nodata: int | None = None, where: str = "labels"
    ) -> np.ndarray:
        """Map source codes to class indices (uint8, 255 = ignore).

        Args:
            codes: integer array of source codes.
            nodata: the source's nodata code; becomes 255.
            where: what the array is, for the error message (area and file).

        Raises:
            DataError: when a code is neither in the class map nor ignored.
        """
        lut = self.lookup_table(max(65536, int(codes.max(initial=0)) + 1))
        if nodata is not None:
            lut[int(nodata)] = IGNORE
        out = lut[codes.astype(np.int64, copy=False)]
        if (out < 0).any():
            missing = sorted(int(c) for c in np.unique(codes[out < 0]))
            raise DataError(
                f"{where}: label code(s) {missing} are not in the class map. Add them to a "
                "class's `codes` in the config's `classes`, or list them in `ignore_codes`."
            )
        return out.astype(np.uint8)

    def colormap(self) -> dict[int, tuple[int, int, int, int]]:
        """A rasterio colour map ``index -> RGBA`` (255 transparent)."""
        cmap = {i: (*hex_to_rgb(c), 255) for i, c in enumerate(self.colours)}
        cmap[IGNORE] = (0, 0, 0, 0)
        return cmap


def hex_to_rgb(colour: str) -> tuple[int, int, int]:
    """``"#006400"`` -> ``(0, 100, 0)``."""
    value = colour.lstrip("#")
    if len(value) != 6:
        raise ConfigError(f"classes: colour '{colour}' must be '#RRGGBB'.")
    return (int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16))


def class_names(classes: Sequence[str | Mapping[str, Any]]) -> list[str]:
    """Class names from the config's ``classes`` list (dicts with ``name``) or plain names."""
    return [str(c["name"]) if isinstance(c, Mapping) else str(c) for c in classes]
