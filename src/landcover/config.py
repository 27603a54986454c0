"""Checks of the validated config that a JSON Schema cannot express, and the area table.

`rules/common.smk` validates the config against `config/schema.yaml` first (types,
defaults, typos), then calls :func:`area_table` and :func:`check_config` so that a bad
area, holdout or patch size fails before any job runs, with the key and the fix named.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from landcover.classes import ClassMap
from landcover.errors import ConfigError
from landcover.grid import BBox, area_grid, check_bbox
from landcover.sources import check_source

SCHEMA = Path(__file__).resolve().parents[2] / "config" / "schema.yaml"
"""The one place of every key and default (read from the repository checkout)."""


def validated(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config as the workflow sees it: validated against the schema, defaults filled.

    For tools outside Snakemake (the bench scripts, tests) that call library functions
    with settings: the library keeps no defaults of its own.

    Raises:
        snakemake.exceptions.WorkflowError: naming the key that does not validate.

    """
    from snakemake.utils import validate  # the workflow's own validator (jsonschema)

    config = copy.deepcopy(dict(config))
    validate(config, schema=str(SCHEMA))
    return config


@dataclass(frozen=True)
class Area:
    """One area of interest.

    Attributes:
        name: the area's id (the ``{area}`` wildcard).
        bbox: (west, south, east, north) in degrees.
        landscape: the demo landscape generated for it (demo source only).
    """

    name: str
    bbox: BBox
    landscape: str = "forest"


def _bbox_of_file(path: str | Path, where: str) -> BBox:
    """Total bounds, in EPSG:4326, of the features of a GeoJSON/GeoPackage."""
    import geopandas as gpd  # imported here: only configs with area files need it

    try:
        frame = gpd.read_file(path)
    except Exception as err:  # pyogrio raises several types for missing/corrupt files
        raise ConfigError(
            f"{where}: cannot read the vector file '{path}' ({err}). Give the path of a "
            "GeoJSON or GeoPackage, relative to the working directory."
        ) from err
    if frame.empty or frame.crs is None:
        raise ConfigError(
            f"{where}: '{path}' has no features or no CRS; it needs polygons with a CRS."
        )
    west, south, east, north = frame.to_crs("EPSG:4326").total_bounds
    return (float(west), float(south), float(east), float(north))


def area_table(areas: Mapping[str, Any] | str) -> dict[str, Area]:
    """The areas of the config as a name -> :class:`Area` table.

    Args:
        areas: the config's ``areas``: a mapping name -> {bbox | file, landscape}, or
            the path of a vector file with a ``name`` column (one area per feature).

    Raises:
        ConfigError: naming the area when its bbox is inverted, out of range or its
            file unreadable.
    """
    if isinstance(areas, str):
        import geopandas as gpd

        frame = gpd.read_file(areas) if Path(areas).exists() else None
        if frame is None or "name" not in frame.columns or frame.crs is None:
            raise ConfigError(
                f"areas: '{areas}' must be a readable GeoJSON/GeoPackage with a CRS and a "
                "`name` column (one feature per area)."
            )
        frame = frame.to_crs("EPSG:4326")
        table = {}
        for name, group in frame.groupby("name"):
            west, south, east, north = group.total_bounds
            table[str(name)] = Area(str(name), check_bbox((west, south, east, north), str(name)))
        return table
    table = {}
    for name, spec in areas.items():
        if spec.get("bbox") is not None:
            bbox = check_bbox(spec["bbox"], name)
        else:
            bbox = check_bbox(_bbox_of_file(spec["file"], f"Area '{name}'"), name)
        table[name] = Area(name, bbox, spec.get("landscape", "forest"))
    return table


def check_config(config: Mapping[str, Any], areas: Mapping[str, Area]) -> None:
    """Fail early on config values that are valid JSON but not a runnable workflow.

    Checks: holdout areas exist and leave an area to train on; the split method has what
    it needs; the class map is consistent; the patch size fits every area's grid;
    leave-one-area-out has two areas or more.

    Raises:
        ConfigError: naming the key (and area) and the fix.
    """
    for name in config["holdout"]:
        if name not in areas:
            raise ConfigError(
                f"holdout: area '{name}' is not defined in `areas` (defined: "
                f"{', '.join(sorted(areas))}). Fix the name or add the area."
            )
    if config["evaluate"]["leave_one_area_out"]:
        check_leave_one_area_out(areas)
    train_areas = [a for a in areas if a not in config["holdout"]]
    if not train_areas:
        raise ConfigError("holdout: every area is held out; leave at least one to train on.")
    method = config["split"]["method"]
    if "areas" in method and not config["holdout"]:
        raise ConfigError(
            f"split.method is '{method}' but `holdout` is empty: name the areas to hold "
            "out, or use split.method: blocks."
        )
    ClassMap.from_config(config["classes"], config["ignore_codes"])
    size = config["patches"]["size"]
    if config["patches"]["stride"] > size:
        raise ConfigError(
            f"patches.stride ({config['patches']['stride']}) is larger than patches.size "
            f"({size}): pixels between patches would never be used. Use stride <= size."
        )
    for area in areas.values():
        grid = area_grid(area.bbox, config["grid"]["resolution"], config["grid"]["crs"])
        if min(grid.shape) < size:
            raise ConfigError(
                f"Area '{area.name}': its grid is {grid.width} x {grid.height} px at "
                f"{config['grid']['resolution']} m, smaller than patches.size = {size}. "
                "Use a smaller patches.size or a larger bbox."
            )
    for section in ("imagery", "labels"):
        check_source(section, config[section])


def check_leave_one_area_out(areas: Mapping[str, Area]) -> None:
    """Leave-one-area-out needs two areas: one held out, at least one to train on.

    Raises:
        ConfigError: naming `evaluate.leave_one_area_out`, the areas and the fix.
    """
    if len(areas) < 2:
        raise ConfigError(
            "evaluate.leave_one_area_out needs at least 2 areas (each is held out in turn "
            f"while the others train), but `areas` has {len(areas)}"
            f"{': ' + ', '.join(areas) if areas else ''}. Add an area to `areas`, or set "
            "evaluate.leave_one_area_out: false (and do not ask for the `loao` target)."
        )
