"""Experiments: named overrides of the model and training settings, and grids of them.

Each experiment is one Snakemake job per device (``{experiment}`` x ``{device}``). The
config's ``experiments`` maps a name to overrides of ``model`` and ``training``;
``experiment_grid`` maps dotted keys to lists of values, expanded to their cartesian
product with readable generated names (``arch-fpn_lr-0.001``), each applied on top of
every named experiment.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Mapping
from typing import Any

from landcover.errors import ConfigError

OVERRIDABLE = ("model", "training")
"""Config sections an experiment may override."""


def _short(value: object) -> str:
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return re.sub(r"[^A-Za-z0-9.]+", "", text)


def _set(settings: dict[str, Any], dotted: str, value: object, where: str) -> None:
    section, _, key = dotted.partition(".")
    if section not in OVERRIDABLE or not key or "." in key:
        raise ConfigError(
            f"{where}: '{dotted}' is not an overridable key; use 'model.<key>' or "
            "'training.<key>' (e.g. model.arch, training.lr)."
        )
    if key not in settings[section]:
        raise ConfigError(
            f"{where}: '{dotted}' is not a key of `{section}` (known: "
            f"{', '.join(sorted(settings[section]))}). Fix the spelling."
        )
    settings[section][key] = value


def experiment_table(
    base: Mapping[str, Mapping[str, Any]],
    experiments: Mapping[str, Mapping[str, Mapping[str, Any]] | None],
    grid: Mapping[str, list[Any]] | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """All experiments with their full model and training settings.

    Args:
        base: ``{"model": {...}, "training": {...}}``, the config's sections with
            defaults filled by the schema.
        experiments: name -> ``{"model": {...}, "training": {...}}`` overrides (empty
            or None: the base settings).
        grid: dotted key -> list of values; each combination is applied on top of every
            named experiment, named ``<experiment>_<key>-<value>_...``.

    Returns:
        name -> ``{"model": {...}, "training": {...}}``.

    Raises:
        ConfigError: on a key that is not a model or training setting.
    """
    named: dict[str, dict[str, dict[str, Any]]] = {}
    for name, overrides in (experiments or {"default": {}}).items():
        settings = {section: dict(copy.deepcopy(base[section])) for section in OVERRIDABLE}
        for section, values in (overrides or {}).items():
            for key, value in (values or {}).items():
                _set(settings, f"{section}.{key}", value, f"experiments.{name}")
        named[name] = settings
    if not grid:
        return named
    keys = list(grid)
    table = {}
    for name, settings in named.items():
        for combo in itertools.product(*(grid[k] for k in keys)):
            expanded = copy.deepcopy(settings)
            parts = [name]
            for dotted, value in zip(keys, combo, strict=True):
                _set(expanded, dotted, value, "experiment_grid")
                parts.append(f"{dotted.partition('.')[2]}-{_short(value)}")
            table["_".join(parts)] = expanded
    return table
