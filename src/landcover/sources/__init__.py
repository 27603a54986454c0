"""Where imagery and labels come from: one module per source kind, and the registry.

A source kind is a module with ``acquire_imagery`` and/or ``acquire_labels``, each taking
``(area, bbox, *, <settings>, out)``: the keyword arguments are the keys of the config's
``imagery`` / ``labels`` section that the kind reads (plus ``resolution`` for imagery),
so its signature is its parameter list. It may define ``inputs_imagery`` /
``inputs_labels`` (the local files it reads, declared as inputs: :func:`source_inputs`),
set ``needs_bucket = True`` (it reads the generated demo bucket) and ``DEFAULT_ROOT``
(the public service used when ``root`` is null). Adding a kind means one module here
and one entry in :data:`IMAGERY` or :data:`LABELS` (and its name in the schema's
``kind`` enum); the rules, scripts and config checks look kinds up here. The contract is
in ``docs/contracts.md``.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from landcover.errors import ConfigError
from landcover.grid import check_bbox
from landcover.sources import chips, demo, local, stac, worldcover

IMAGERY: dict[str, ModuleType] = {"demo": demo, "stac": stac, "local": local, "chips": chips}
"""Imagery source kinds: ``imagery.kind`` -> module with ``acquire_imagery`` (areas by
bbox) and/or ``acquire_imagery_window`` (areas given as pixel windows)."""

LABELS: dict[str, ModuleType] = {
    "demo": demo,
    "worldcover": worldcover,
    "local": local,
    "chips": chips,
}
"""Label source kinds: ``labels.kind`` -> module with ``acquire_labels`` and/or
``acquire_labels_window``."""

_SECTIONS = {"imagery": IMAGERY, "labels": LABELS}


def source_kind(section: str, kind: str) -> ModuleType:
    """The module of ``{section}.kind``.

    Raises:
        ConfigError: naming the key and the known kinds.

    """
    kinds = _SECTIONS[section]
    if kind not in kinds:
        raise ConfigError(f"{section}.kind '{kind}' is unknown; use one of {sorted(kinds)}.")
    return kinds[kind]


def source_root(section: str, source: Mapping[str, Any], demo_root: str) -> str | None:
    """The root a source reads from: the demo bucket, the configured root or the kind's default."""
    module = source_kind(section, source["kind"])
    if getattr(module, "needs_bucket", False):
        return demo_root
    return source.get("root") or getattr(module, "DEFAULT_ROOT", None)


def needs_demo_bucket(config: Mapping[str, Any]) -> bool:
    """Whether a configured source reads the generated demo bucket."""
    return any(
        getattr(source_kind(section, config[section]["kind"]), "needs_bucket", False)
        for section in _SECTIONS
    )


def check_source(section: str, source: Mapping[str, Any]) -> None:
    """Config checks of a source that the schema cannot make (the kind's ``check``)."""
    check = getattr(source_kind(section, source["kind"]), f"check_{section}", None)
    if check is not None:
        check(source)


def source_inputs(section: str, source: Mapping[str, Any], area: str | None = None) -> list[str]:
    """The local files a source reads (the kind's ``inputs_{section}``); none for others.

    Inputs of ``acquire_{section}``: replacing one reruns the area's acquisition and what
    depends on it (Snakemake's mtime trigger; a file under 1 MB only when its checksum
    changed). A kind whose files differ per area (a pinned scene list) takes ``area``.
    """
    inputs = getattr(source_kind(section, source["kind"]), f"inputs_{section}", None)
    if inputs is None:
        return []
    if "area" in inspect.signature(inputs).parameters:
        return inputs(source, area=area)
    return inputs(source)


def _call(function: Any, area: str, bbox: Sequence[float], settings: Mapping[str, Any]) -> Path:
    """Call a kind's function with the settings its signature names (the rest are other kinds')."""
    accepted = inspect.signature(function).parameters
    box = check_bbox(tuple(bbox), area)  # type: ignore[arg-type]
    return function(area, box, **{k: v for k, v in settings.items() if k in accepted})


def _call_window(
    section: str, kind: str, area: str, window: Any, settings: Mapping[str, Any]
) -> Path:
    """Call a kind's ``acquire_{section}_window`` for an area given as a pixel window.

    Raises:
        ConfigError: the kind reads areas by bbox only.

    """
    function = getattr(source_kind(section, kind), f"acquire_{section}_window", None)
    if function is None:
        raise ConfigError(
            f"Area '{area}' is a pixel `window`, which {section}.kind '{kind}' cannot read "
            f"(it reads areas by their bbox). Fix: set {section}.kind: local with "
            f"{section}.root on your file, or give the area a `bbox`."
        )
    accepted = inspect.signature(function).parameters
    return function(area, window, **{k: v for k, v in settings.items() if k in accepted})


def acquire_imagery(
    area: str, bbox: Sequence[float] | None, kind: str, window: Any = None, **settings: Any
) -> Path:
    """Write an area's imagery window with the ``kind`` source (``resources/raw/{area}/...``).

    Args:
        area: area id (for messages and tags).
        bbox: (west, south, east, north) in degrees; None for an area given as a window.
        kind: the ``imagery.kind``.
        window: the area's pixel window (``areas.<name>.window``), or None.
        settings: ``root`` (resolved by :func:`source_root`), ``resolution``, ``out`` and
            the config's ``imagery`` keys; each kind takes the ones it names.

    """
    if window is not None:
        return _call_window("imagery", kind, area, window, settings)
    return _call(source_kind("imagery", kind).acquire_imagery, area, bbox, settings)


def acquire_labels(
    area: str, bbox: Sequence[float] | None, kind: str, window: Any = None, **settings: Any
) -> Path:
    """Write an area's label window with the ``kind`` source (``resources/raw/{area}/...``).

    Args:
        area: area id (for messages and tags).
        bbox: (west, south, east, north) in degrees; None for an area given as a window.
        kind: the ``labels.kind``.
        window: the area's pixel window (``areas.<name>.window``), or None.
        settings: ``root`` (resolved by :func:`source_root`), ``out`` and the config's
            ``labels`` keys; each kind takes the ones it names.

    """
    if window is not None:
        return _call_window("labels", kind, area, window, settings)
    return _call(source_kind("labels", kind).acquire_labels, area, bbox, settings)
