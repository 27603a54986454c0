# Setup shared by all rules: config validation, the area table, wildcard constraints,
# input functions and target collectors.
import sys
from pathlib import Path

from snakemake.utils import validate

# The workflow imports its own package; this makes a plain clone work even before
# `pip install -e .` (the README's setup installs it anyway).
sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from landcover.config import area_table, check_config, source_root  # noqa: E402

validate(config, schema="../config/schema.yaml")
AREAS = area_table(config["areas"])
check_config(config, AREAS)
DEMO_ROOT = config["demo"]["root"]
TRAIN_AREAS = [a for a in AREAS if a not in config["holdout"]]


wildcard_constraints:
    area="|".join(AREAS),


def get_demo_bucket(wildcards):
    """The demo bucket when a source reads from it, so that it is generated first."""
    kinds = {config["imagery"]["kind"], config["labels"]["kind"]}
    return DEMO_ROOT if "demo" in kinds else []


def get_bbox(wildcards):
    """The area's [west, south, east, north] in degrees."""
    return list(AREAS[wildcards.area].bbox)


def get_demo_areas():
    """Areas as plain dicts for the demo generator."""
    return {
        name: {"bbox": list(area.bbox), "landscape": area.landscape}
        for name, area in AREAS.items()
    }


def get_patch_indexes(wildcards):
    """Per-area patch indexes of all areas."""
    return expand("results/patches/{area}/index.parquet", area=AREAS)


def get_final_output():
    """What `snakemake` builds by default."""
    return ["results/patches/class_weights.json"]
