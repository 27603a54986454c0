"""Config validation: the schema, and the checks beyond it (landcover.config)."""

from __future__ import annotations

import itertools
import json

import pytest
import rasterio.transform
import shapely
import yaml

from landcover.config import (
    area_table,
    check_config,
    labelled_areas,
    validate_config,
    validated,
)
from landcover.errors import ConfigError
from landcover.experiments import experiment_table
from landcover.grid import area_grid


def walk_properties(schema: dict, path: str = ""):
    for name, sub in schema.get("properties", {}).items():
        yield f"{path}.{name}", sub, name in schema.get("required", [])
        yield from walk_properties(sub, f"{path}.{name}")
        if isinstance(sub.get("items"), dict):
            yield from walk_properties(sub["items"], f"{path}.{name}[]")
    for sub in schema.get("$defs", {}).values():
        yield from walk_properties(sub, path + ".$defs")


def test_schema_describes_and_defaults_every_key(repo_root):
    schema = yaml.safe_load((repo_root / "config" / "schema.yaml").read_text())
    # bbox, file or window: no default for any
    alternatives = {".$defs.bbox", ".$defs.file", ".$defs.window"}
    for path, sub, required in walk_properties(schema):
        assert sub.get("description"), f"{path} has no description"
        if not required and path not in alternatives:
            assert "default" in sub, f"{path} has no default"


def test_schema_objects_are_closed(repo_root):
    text = (repo_root / "config" / "schema.yaml").read_text()
    schema = yaml.safe_load(text)
    for path, sub, _ in walk_properties(schema):
        if sub.get("type") == "object" and "properties" in sub:
            assert sub.get("additionalProperties") is False, path


def test_demo_config_is_valid_and_fills_defaults(demo_config):
    assert demo_config["patches"]["size"] == 64
    assert demo_config["grid"]["crs"] is None  # filled from the schema's default
    areas = area_table(demo_config["areas"])
    check_config(demo_config, areas)
    assert {"lakeside", "lake_north", "coastal_city", "forest_mosaic", "delta"} <= set(areas)
    assert len(areas) == 8


def test_typo_in_a_key_is_an_error(repo_root):
    from snakemake.exceptions import WorkflowError

    bad = yaml.safe_load((repo_root / "config" / "config.yaml").read_text())
    bad["patches"]["sise"] = 32
    with pytest.raises(WorkflowError, match="sise"):
        validated(bad)


@pytest.mark.parametrize(
    ("bbox", "message"),
    [
        ([-15.8, 16.1, -15.9, 16.14], "inverted"),
        ([-15.9, 16.14, -15.86, 16.10], "inverted"),
        ([-195.0, 16.1, -15.86, 16.14], "out of range"),
        ([-15.9, 16.1, -15.86, 96.0], "out of range"),
    ],
)
def test_bad_bbox_names_the_area(demo_config, bbox, message):
    demo_config["areas"]["lakeside"]["bbox"] = bbox
    with pytest.raises(ConfigError, match=rf"Area 'lakeside'.*{message}"):
        area_table(demo_config["areas"])


def test_undefined_holdout_area(demo_config):
    demo_config["holdout"] = ["atlantis"]
    with pytest.raises(ConfigError, match=r"holdout: area 'atlantis' is not defined"):
        check_config(demo_config, area_table(demo_config["areas"]))


def test_patch_larger_than_area(demo_config):
    demo_config["areas"]["delta"]["bbox"] = [-16.52, 14.98, -16.519, 14.981]
    with pytest.raises(ConfigError, match=r"Area 'delta'.*smaller than patches.size = 64"):
        check_config(demo_config, area_table(demo_config["areas"]))


def test_every_area_held_out(demo_config):
    demo_config["holdout"] = list(demo_config["areas"])
    with pytest.raises(ConfigError, match="leave at least one"):
        check_config(demo_config, area_table(demo_config["areas"]))


def test_areas_are_labelled_unless_told_otherwise(demo_config):
    demo_config["areas"]["delta"] = {"bbox": [-16.52, 14.994, -16.508, 15.006]}
    demo_config["areas"]["delta_south"]["labelled"] = False
    areas = area_table(validated(demo_config)["areas"])  # the schema fills the default
    assert areas["delta"].labelled and not areas["delta_south"].labelled
    check_config(demo_config, areas)
    assert labelled_areas(areas) == [name for name in areas if name != "delta_south"]


def test_an_area_without_labels_cannot_be_held_out(demo_config):
    demo_config["areas"]["lakeside"]["labelled"] = False  # the demo's holdout area
    with pytest.raises(
        ConfigError,
        match=r"holdout: area 'lakeside' has `labelled: false`.*Fix: remove it from `holdout`",
    ):
        check_config(demo_config, area_table(demo_config["areas"]))


def test_a_labelled_area_must_remain_to_train_on(demo_config):
    for spec in demo_config["areas"].values():
        spec["labelled"] = False
    demo_config["holdout"] = []
    with pytest.raises(ConfigError, match=r"every area .* has `labelled: false`; at least one"):
        check_config(demo_config, area_table(demo_config["areas"]))
    demo_config["areas"]["lakeside"]["labelled"] = True  # labelled, but held out
    demo_config["holdout"] = ["lakeside"]
    with pytest.raises(ConfigError, match="every labelled area is held out"):
        check_config(demo_config, area_table(demo_config["areas"]))


def test_leave_one_area_out_counts_labelled_areas_only(demo_config):
    for name, spec in demo_config["areas"].items():
        spec["labelled"] = name == "lakeside"
    demo_config["holdout"] = []
    demo_config["split"]["method"] = "blocks"
    demo_config["evaluate"]["leave_one_area_out"] = True
    with pytest.raises(ConfigError, match=r"at least 2 areas with labels.*has 1: lakeside"):
        check_config(demo_config, area_table(demo_config["areas"]))


@pytest.fixture
def aoi_file(tmp_path):
    """A GeoJSON file of one area, 'lake', in CRS84."""
    geojson = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}},
        "features": [
            {
                "type": "Feature",
                "properties": {"name": "lake"},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [
                        [[-15.9, 16.1], [-15.86, 16.1], [-15.86, 16.14], [-15.9, 16.1]]
                    ],
                },
            }
        ],
    }
    path = tmp_path / "aoi.geojson"
    path.write_text(json.dumps(geojson))
    return path


def test_area_from_geojson(aoi_file, demo_config):
    demo_config["areas"] = {"lake": {"file": str(aoi_file)}}
    table = area_table(validated(demo_config)["areas"])
    assert table["lake"].bbox == pytest.approx((-15.9, 16.1, -15.86, 16.14))


def test_areas_from_a_whole_file_one_per_feature(aoi_file, demo_config):
    demo_config["areas"] = str(aoi_file)
    assert set(area_table(demo_config["areas"])) == {"lake"}


def test_unreadable_area_file(tmp_path, demo_config):
    demo_config["areas"] = {"lake": {"file": str(tmp_path / "missing.gpkg")}}
    with pytest.raises(ConfigError, match=r"Area 'lake'.*missing.gpkg"):
        area_table(demo_config["areas"])


def test_area_names_from_a_file_obey_the_config_rule(aoi_file, tmp_path):
    """A name that cannot be a wildcard or a folder ('site(1)') fails naming the file."""
    bad = tmp_path / "sites.geojson"
    bad.write_text(aoi_file.read_text().replace('"lake"', '"site(1)"'))
    with pytest.raises(ConfigError) as info:
        area_table(str(bad))
    message = str(info.value)
    assert "sites.geojson" in message and "'site(1)'" in message
    assert "letters, digits, '_' and '-'" in message


def demo_yaml(repo_root):
    return yaml.safe_load((repo_root / "config" / "config.yaml").read_text())


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda c: c.update(patchs=c.pop("patches")),
            "unknown key `patchs` at the top level; did you mean `patches`?",
        ),
        (
            lambda c: c["areas"]["lakeside"].update(bbx=c["areas"]["lakeside"].pop("bbox")),
            "unknown key `bbx` in `areas.lakeside`; did you mean `bbox`?",
        ),
        (
            lambda c: c["areas"]["lakeside"].pop("bbox"),
            "`areas.lakeside` needs exactly one of `bbox` or `file`",
        ),
        (lambda c: c.update(patches={"size": 3}), "`patches.size` = 3 is invalid"),
        (lambda c: c.update(imagery={"kind": "lokal"}), "`imagery.kind` = 'lokal' is invalid"),
        (lambda c: c["areas"].update({"site(1)": {"bbox": [0, 0, 1, 1]}}), "'site(1)'"),
    ],
)
def test_config_errors_are_one_short_message(repo_root, edit, expected):
    """The key path, the value and the closest known key, not the schema dump."""
    config = demo_yaml(repo_root)
    edit(config)
    with pytest.raises(ConfigError) as info:
        validate_config(config)
    message = str(info.value)
    assert expected in message
    assert len(message) < 400 and "\n" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_validate_config_fills_defaults_in_place(repo_root):
    config = demo_yaml(repo_root)
    validate_config(config)
    assert config["grid"]["crs"] is None and config["labels"]["min_coverage"] == 0.5


@pytest.mark.parametrize(
    ("crs", "message"),
    [
        ("EPSG:32A28", r"grid\.crs 'EPSG:32A28' is not a CRS.*e\.g\. EPSG:32628"),
        ("EPSG:4326", r"grid\.crs 'EPSG:4326' .* geographic CRS.*projected CRS in metres"),
    ],
)
def test_grid_crs_is_checked_up_front(demo_config, crs, message):
    demo_config["grid"]["crs"] = crs
    with pytest.raises(ConfigError, match=message):
        check_config(demo_config, area_table(demo_config["areas"]))


def test_config_docs_match_the_schema(repo_root):
    from landcover.configdoc import render

    assert (repo_root / "docs" / "config.md").read_text() == render(), (
        "docs/config.md is stale: run `python -m landcover.configdoc > docs/config.md`"
    )


def test_brandenburg_config_is_valid_and_its_areas_share_no_pixel(repo_root):
    config = validated(yaml.safe_load((repo_root / "config" / "brandenburg.yaml").read_text()))
    areas = area_table(config["areas"])
    check_config(config, areas)
    assert config["imagery"]["kind"] == config["labels"]["kind"] == "local"
    grids = {
        name: area_grid(area.bbox, config["grid"]["resolution"]) for name, area in areas.items()
    }
    assert len({str(g.crs) for g in grids.values()}) == 1  # one UTM zone: the scene's
    boxes = {
        name: shapely.box(*rasterio.transform.array_bounds(g.height, g.width, g.transform))
        for name, g in grids.items()
    }
    for a, b in itertools.combinations(boxes, 2):
        assert not boxes[a].intersects(boxes[b]), (a, b)


def test_schema_takes_an_ensemble_of_named_experiments(demo_config):
    experiments = {
        "unet": {},
        "pixel": {"model": {"kind": "pixel"}},
        "ensemble": {"model": {"kind": "ensemble", "members": ["unet", "pixel"]}},
    }
    config = validated({**demo_config, "experiments": experiments})
    assert config["model"]["members"] == []  # the default: no members
    table = experiment_table(
        {"model": config["model"], "training": config["training"]}, config["experiments"]
    )
    assert table["ensemble"]["model"]["kind"] == "ensemble"
    assert table["ensemble"]["model"]["members"] == ["unet", "pixel"]


def test_wildcards_built_from_names_are_escaped(repo_root):
    """An area name is matched literally by the wildcard (no regex characters leak in)."""
    text = (repo_root / "rules" / "common.smk").read_text()
    block = text.split("wildcard_constraints:", 1)[1].split("\n\n", 1)[0]
    joined = [line for line in block.splitlines() if '"|".join(' in line]
    assert joined and all("re.escape(name)" in line for line in joined), joined


def write_areas_file(path, labelled):
    """Three square areas west of Dakar with the given `labelled` cells (None: empty)."""
    import geopandas as gpd
    from shapely.geometry import box

    names = ["north", "middle", "south"]
    frame = gpd.GeoDataFrame(
        {"name": names, "labelled": labelled},
        geometry=[box(-17.4, 14.7 + 0.05 * k, -17.37, 14.73 + 0.05 * k) for k in range(3)],
        crs="EPSG:4326",
    )
    frame.to_file(path, driver="GPKG" if str(path).endswith(".gpkg") else "GeoJSON")
    return str(path)


def test_an_areas_file_marks_areas_without_labels(tmp_path):
    path = write_areas_file(tmp_path / "areas.geojson", [True, False, None])
    areas = area_table(path)
    assert {n: a.labelled for n, a in areas.items()} == {
        "north": True,
        "middle": False,
        "south": True,  # an empty cell: labelled, as the mapping's default
    }
    assert labelled_areas(areas) == ["north", "south"]
    without = write_areas_file(tmp_path / "plain.geojson", [None, None, None])
    assert all(a.labelled for a in area_table(without).values())
    package = write_areas_file(tmp_path / "areas.gpkg", [False, True, True])  # a real boolean
    labelled = {name: area.labelled for name, area in area_table(package).items()}
    assert labelled == {"north": False, "middle": True, "south": True}


def test_an_areas_files_labelled_column_must_be_boolean(tmp_path):
    path = write_areas_file(tmp_path / "areas.geojson", ["yes", "no", None])
    with pytest.raises(ConfigError, match=r"areas\.geojson.*area 'middle'.*`labelled`.*Fix"):
        area_table(path)
