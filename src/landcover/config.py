"""Checks of the validated config that a JSON Schema cannot express, and the area table.

`rules/common.smk` validates the config against `config/schema.yaml` first
(:func:`validate_config`: types, defaults, typos, one short message naming the key),
then calls :func:`area_table` and :func:`check_config` so that a bad area, holdout,
grid CRS or patch size fails before any job runs, with the key and the fix named.
"""

from __future__ import annotations

import copy
import difflib
import re
import reprlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from landcover.classes import ClassMap
from landcover.errors import ConfigError
from landcover.grid import BBox, area_grid, check_bbox, check_grid_crs
from landcover.sources import check_source

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError

SCHEMA = Path(__file__).resolve().parents[2] / "config" / "schema.yaml"
"""The one place of every key and default (read from the repository checkout)."""

AREA_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
"""What an area name may hold (the schema's ``areas`` property names): it becomes a
folder name and the ``{area}`` wildcard."""


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


def validate_config(config: dict[str, Any], schema: str | Path = SCHEMA) -> None:
    """Validate the workflow's config in place (defaults filled), failing with one short message.

    Snakemake's validator reports the first error with the whole schema (over a thousand
    lines); this keeps the key path, the bad value and, for an unknown key, the closest
    known key.

    Raises:
        ConfigError: e.g. "unknown key `patchs` at the top level; did you mean `patches`?".

    """
    from jsonschema.exceptions import ValidationError
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    try:
        validate(config, schema=str(schema))
    except WorkflowError as err:
        cause = err.__context__
        if not isinstance(cause, ValidationError):
            raise
        raise ConfigError(f"Invalid config: {describe_invalid(cause)}") from None


def describe_invalid(error: ValidationError) -> str:
    """One short sentence for a JSON Schema error: where, what value, and the fix."""
    leaf = max(_terminal_errors(error), key=_relevance)
    where = _key_path(leaf.absolute_path)
    docs = "Every key is described in docs/config.md."
    if leaf.validator == "additionalProperties":
        return f"{_unknown_keys(leaf, where)} {docs}"
    if leaf.validator == "oneOf":  # alternatives that each require a key (bbox / file)
        names = " or ".join(f"`{key}`" for alt in leaf.validator_value for key in alt["required"])
        return f"`{where}` needs exactly one of {names}. {docs}"
    if "propertyNames" in leaf.schema_path:
        return (
            f"`{where}`: the name {leaf.instance!r} is not allowed ({leaf.message}); "
            f"names may hold letters, digits, '_' and '-'. {docs}"
        )
    value = reprlib.repr(leaf.instance)
    message = leaf.message if len(leaf.message) <= 200 else leaf.message[:200] + "..."
    return f"`{where}` = {value} is invalid: {message}. {docs}"


def _terminal_errors(error: ValidationError) -> Iterator[ValidationError]:
    """The errors under ``error`` that say what is wrong (not "valid under none of ...")."""
    alternatives = error.validator == "oneOf" and all(
        isinstance(alt, dict) and set(alt) == {"required"} for alt in error.validator_value
    )
    if not error.context or alternatives:
        yield error
        return
    for sub in error.context:
        yield from _terminal_errors(sub)


def _relevance(error: ValidationError) -> tuple[bool, bool, int]:
    """Rank errors: unknown keys first (the usual typo), then the deepest.

    An error of the alternative of the right type comes before a type error of another
    (``areas`` is a mapping or a file name).
    """
    return (
        error.validator == "additionalProperties",
        error.validator != "type",
        len(error.absolute_path),
    )


def _key_path(path: Sequence[str | int]) -> str:
    """``areas.lakeside.bbox``, ``classes[0].colour``; ``(top level)`` for the root."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".") or "(top level)"


def _unknown_keys(error: ValidationError, where: str) -> str:
    """Name each unknown key of an object and the closest known one."""
    known = list(error.schema.get("properties", {}))
    unknown = [key for key in error.instance if key not in known]
    place = "at the top level" if where == "(top level)" else f"in `{where}`"
    parts = []
    for key in unknown:
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        hint = f"did you mean `{close[0]}`?" if close else f"known keys: {', '.join(known)}."
        parts.append(f"unknown key `{key}` {place}; {hint}")
    return " ".join(parts)


@dataclass(frozen=True)
class Area:
    """One area of interest.

    Attributes:
        name: the area's id (the ``{area}`` wildcard).
        bbox: (west, south, east, north) in degrees; None for an area given as a window.
        landscape: the demo landscape generated for it (demo source only).
        window: ``[col, row, width, height]`` of the local files, or ``"all"``; None for
            an area given by a bbox or vector file
            (:mod:`landcover.sources.pixel_areas`).
        labelled: whether the area has labels (``areas.<name>.labelled``, the schema's
            default filled): one without is acquired (imagery only), aligned, mapped and
            drawn, never tiled, trained on or scored.
    """

    name: str
    bbox: BBox | None
    landscape: str = "forest"
    window: tuple[int, int, int, int] | str | None = None
    labelled: bool = field(kw_only=True)  # no default here: the schema's is filled


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
        areas: the config's ``areas`` (validated, defaults filled): a mapping name ->
            {bbox | file | window, landscape, labelled}, or the path of a vector file with
            a ``name`` column (one area per feature or group of features of one name) and
            an optional boolean ``labelled`` column (empty: labelled).

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
        check_area_names(frame["name"].tolist(), f"areas: '{areas}'")
        frame = frame.to_crs("EPSG:4326")
        table = {}
        for name, group in frame.groupby("name"):
            west, south, east, north = group.total_bounds
            bbox = check_bbox((west, south, east, north), str(name))
            labelled = _file_labelled(group, str(name), areas)
            table[str(name)] = Area(str(name), bbox, labelled=labelled)
        return table
    check_area_names(list(areas), "areas")
    table = {}
    for name, spec in areas.items():
        if spec.get("window") is not None:
            window = spec["window"]
            window = window if window == "all" else tuple(window)
            table[name] = Area(name, None, window=window, labelled=spec["labelled"])
            continue
        if spec.get("bbox") is not None:
            bbox = check_bbox(spec["bbox"], name)
        else:
            bbox = check_bbox(_bbox_of_file(spec["file"], f"Area '{name}'"), name)
        table[name] = Area(name, bbox, spec.get("landscape", "forest"), labelled=spec["labelled"])
    return table


def _file_labelled(group: Any, name: str, path: str) -> bool:
    """Whether an area of an areas file has labels: its features' ``labelled`` values.

    A missing column or empty cells mean labelled (as ``areas.<name>.labelled``'s
    default); otherwise every feature of the area must say the same boolean.

    Raises:
        ConfigError: naming the file, the area and the values it found.

    """
    if "labelled" not in group.columns:
        return True
    cells = [v for v in group["labelled"].tolist() if v is not None and v == v]  # v == v: not NaN
    # a boolean, 1 / 0 (GeoPackage) or its text (GeoJSON written from a column with gaps)
    values = {str(v).strip().lower() for v in cells}
    if not values:
        return True
    if len(values) == 1 and values <= {"true", "false", "1", "0", "1.0", "0.0"}:
        return values <= {"true", "1", "1.0"}
    raise ConfigError(
        f"areas: '{path}': area '{name}' has `labelled` values {sorted(map(str, cells))}; "
        "each area's features need one boolean (true or false, or empty for labelled). "
        "Fix the `labelled` column."
    )


def check_area_names(names: Sequence[Any], where: str) -> None:
    """Area names must match :data:`AREA_NAME` (as the schema requires of config keys).

    Raises:
        ConfigError: naming ``where`` (the key or file), the bad names and the rule.

    """
    bad = [name for name in names if not isinstance(name, str) or not AREA_NAME.match(name)]
    if bad:
        shown = ", ".join(sorted({repr(name) for name in bad}))
        raise ConfigError(
            f"{where}: area name(s) {shown} are not allowed; a name is "
            "the `{area}` wildcard and a folder name, so it may hold only letters, digits, "
            "'_' and '-' (e.g. 'site_1'). Fix: rename the area(s)."
        )


def check_config(config: Mapping[str, Any], areas: Mapping[str, Area]) -> None:
    """Fail early on config values that are valid JSON but not a runnable workflow.

    Checks: holdout areas exist, have labels and leave a labelled area to train on; the
    split method has what it needs; the class map is consistent; ``grid.crs`` is a
    projected CRS in metres; the patch size fits every labelled area's grid;
    leave-one-area-out has two labelled areas or more.

    Raises:
        ConfigError: naming the key (and area) and the fix.
    """
    for name in config["holdout"]:
        if name not in areas:
            raise ConfigError(
                f"holdout: area '{name}' is not defined in `areas` (defined: "
                f"{', '.join(sorted(areas))}). Fix the name or add the area."
            )
        if not areas[name].labelled:
            raise ConfigError(
                f"holdout: area '{name}' has `labelled: false`, so it has no labels to be "
                "scored on; an area without labels is only mapped. Fix: remove it from "
                f"`holdout`, or give it labels and drop `areas.{name}.labelled: false`."
            )
    labelled = labelled_areas(areas)
    if not labelled:
        raise ConfigError(
            f"areas: every area ({', '.join(areas)}) has `labelled: false`; at least one "
            "labelled area is needed to train on. Fix: give an area labels and drop its "
            "`labelled: false`."
        )
    if config["evaluate"]["leave_one_area_out"]:
        check_leave_one_area_out(areas)
    train_areas = [a for a in labelled if a not in config["holdout"]]
    if not train_areas:
        raise ConfigError(
            "holdout: every labelled area is held out; leave at least one to train on."
        )
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
    check_grid_crs(config["grid"]["crs"])
    check_window_areas(config, areas)
    for area in areas.values():
        if area.bbox is None or not area.labelled:
            continue  # a pixel window: its size is checked when it is read; never tiled
        grid = area_grid(area.bbox, config["grid"]["resolution"], config["grid"]["crs"])
        if min(grid.shape) < size:
            raise ConfigError(
                f"Area '{area.name}': its grid is {grid.width} x {grid.height} px at "
                f"{config['grid']['resolution']} m, smaller than patches.size = {size}. "
                "Use a smaller patches.size or a larger bbox."
            )
    for section in ("imagery", "labels"):
        check_source(section, config[section])


def check_window_areas(config: Mapping[str, Any], areas: Mapping[str, Area]) -> None:
    """Areas given as pixel windows need local sources, and do not mix with bbox areas.

    A window is read from the user's own files on their own pixel grid (with or without
    a CRS), so both sources must be ``local``; bbox areas live on map grids, and the two
    cannot be split or compared together.

    Raises:
        ConfigError: naming the areas, the key and the fix.

    """
    windows = sorted(name for name, area in areas.items() if area.window is not None)
    if not windows:
        return
    boxes = sorted(name for name, area in areas.items() if area.window is None)
    if boxes:
        raise ConfigError(
            f"areas: {', '.join(windows)} are pixel windows but {', '.join(boxes)} are "
            "bboxes; a config holds one or the other. Fix: give every area a `window` (of "
            "the local files) or every area a `bbox`."
        )
    kinds = {config[section]["kind"] for section in ("imagery", "labels")}
    if kinds not in ({"local"}, {"chips"}):
        raise ConfigError(
            f"areas: {', '.join(windows)} are pixel windows of your own files, but "
            f"imagery.kind is '{config['imagery']['kind']}' and labels.kind "
            f"'{config['labels']['kind']}'. Fix: set both kinds to local (with roots on your "
            "files, `{area}` in them for one file per area) or both to chips."
        )


def labelled_areas(areas: Mapping[str, Area]) -> list[str]:
    """Names of the areas with labels, in config order.

    They are the ones tiled, split, trained on, validated on, scored and cross-validated;
    the others (``labelled: false``) are only mapped and drawn.
    """
    return [name for name, area in areas.items() if area.labelled]


def check_leave_one_area_out(areas: Mapping[str, Area]) -> None:
    """Leave-one-area-out needs two labelled areas: one held out, one to train on.

    Raises:
        ConfigError: naming `evaluate.leave_one_area_out`, the areas and the fix.
    """
    labelled = labelled_areas(areas)
    if len(labelled) < 2:
        unlabelled = len(areas) - len(labelled)
        raise ConfigError(
            "evaluate.leave_one_area_out needs at least 2 areas with labels (each is held "
            f"out in turn while the others train), but `areas` has {len(labelled)}"
            f"{': ' + ', '.join(labelled) if labelled else ''}"
            f"{f' (and {unlabelled} with `labelled: false`)' if unlabelled else ''}. Add a "
            "labelled area to `areas`, or set evaluate.leave_one_area_out: false (and do "
            "not ask for the `loao` target)."
        )
