"""Experiments: named overrides of the model and training settings, and grids of them.

Each experiment is one Snakemake job per device (``{experiment}`` x ``{device}``). The
config's ``experiments`` maps a name to overrides of ``model`` and ``training``;
``experiment_grid`` maps dotted keys to lists of values, expanded to their cartesian
product with readable generated names (``arch-fpn_lr-0.001``), each applied on top of
every named experiment. An ensemble (``model.kind: ensemble``) names other experiments in
``model.members``; in a grid, each combination of it averages the same combination of its
members.
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

ENSEMBLE = "ensemble"
"""The ``model.kind`` whose ``model.members`` name other experiments."""


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
        ConfigError: on a key that is not a model or training setting, or members of an
            ensemble that are not other experiments (:func:`check_members`).
    """
    named: dict[str, dict[str, dict[str, Any]]] = {}
    for name, overrides in (experiments or {"default": {}}).items():
        settings = {section: dict(copy.deepcopy(base[section])) for section in OVERRIDABLE}
        for section, values in (overrides or {}).items():
            for key, value in (values or {}).items():
                _set(settings, f"{section}.{key}", value, f"experiments.{name}")
        named[name] = settings
    check_members(named)
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
            # an ensemble's members in the same grid combination as the ensemble
            if expanded["model"].get("members"):
                members = expanded["model"]["members"]
                expanded["model"]["members"] = ["_".join([m, *parts[1:]]) for m in members]
            table["_".join(parts)] = expanded
    check_members(table, "experiment_grid: experiments")
    return table


def check_members(
    table: Mapping[str, Mapping[str, Mapping[str, Any]]], where: str = "experiments"
) -> None:
    """An ensemble's ``model.members`` are at least 2 other experiments, none an ensemble.

    Args:
        table: name -> ``{"model": {...}, "training": {...}}``.
        where: how messages name an experiment (``experiments.<name>``).

    Raises:
        ConfigError: naming ``<where>.<name>.model.members`` and the fix.
    """
    for name, settings in table.items():
        kind, members = settings["model"].get("kind"), settings["model"].get("members") or []
        key = f"{where}.{name}.model.members"
        if kind != ENSEMBLE:
            if members:
                raise ConfigError(
                    f"{key} is {members} but model.kind is '{kind}': only an ensemble has "
                    f"members. Set model.kind: ensemble in experiments.{name}, or remove "
                    "model.members."
                )
            continue
        if len(set(members)) < 2 or len(set(members)) < len(members):
            raise ConfigError(
                f"{key} is {members}: an ensemble averages at least 2 different "
                "experiments, each listed once (e.g. members: [unet, pixel])."
            )
        for member in members:
            other = table.get(member)
            if member == name or other is None:
                problem = "is the ensemble itself" if member == name else "is not an experiment"
                raise ConfigError(
                    f"{key}: '{member}' {problem}; list other experiments of `experiments` "
                    f"(defined: {', '.join(sorted(table))})."
                )
            if other["model"].get("kind") == ENSEMBLE:
                raise ConfigError(
                    f"{key}: '{member}' is itself an ensemble; list its members "
                    f"({', '.join(other['model'].get('members') or [])}) instead."
                )


def experiment_seed(settings: Mapping[str, Mapping[str, Any]], default: int) -> int:
    """The seed an experiment trains with: its ``training.seed``, else the config's ``seed``."""
    seed = settings["training"].get("seed")
    return int(default if seed is None else seed)
