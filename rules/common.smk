# Setup shared by all rules: config validation, the area table, wildcard constraints,
# input functions and target collectors.
import re
import sys
from pathlib import Path

# The workflow imports its own package; this makes a plain clone work even before
# `pip install -e .` (the README's setup installs it anyway).
SRC = Path(workflow.basedir) / "src"
sys.path.insert(0, str(SRC))

from landcover.config import (  # noqa: E402
    area_table,
    check_config,
    check_leave_one_area_out,
    labelled_areas,
    validate_config,
)
from landcover.models import model_kind  # noqa: E402
from landcover.sources import (  # noqa: E402
    needs_demo_bucket,
    source_inputs,
    source_root,
)
from landcover.experiments import experiment_seed, experiment_table  # noqa: E402
from landcover.mapping.threads import map_threads  # noqa: E402
from landcover.evaluation.loao import FOLD_SPLIT_METHOD  # noqa: E402
from landcover.prepare.folds import check_folds, fold_names  # noqa: E402

# the schema fills defaults; a failure is one short message naming the key
validate_config(config, Path(workflow.basedir) / "config" / "schema.yaml")
AREAS = area_table(config["areas"])
check_config(config, AREAS)
DEMO_ROOT = config["demo"]["root"]
# Areas with labels are tiled, split, trained on, validated on, scored and
# cross-validated; those with `labelled: false` are only aligned (imagery alone), mapped
# and drawn. AREAS holds both.
LABELLED_AREAS = labelled_areas(AREAS)
UNLABELLED_AREAS = [name for name in AREAS if name not in LABELLED_AREAS]
TRAIN_AREAS = [a for a in LABELLED_AREAS if a not in config["holdout"]]
EXPERIMENTS = experiment_table(
    {"model": config["model"], "training": config["training"]},
    config["experiments"],
    config["experiment_grid"],
)
DEVICES = config["devices"]
LEAVE_ONE_AREA_OUT = config["evaluate"]["leave_one_area_out"]
# The library package that scores maps (an input of evaluate: editing it reruns the scores).
EVALUATE_CODE = [
    str(SRC / "landcover" / "evaluation" / f) for f in ("metrics.py", "scoring.py")
]
# Imagery kinds that composite STAC items: they also write items.json and clear_count.tif.
COMPOSITE = config["imagery"]["kind"] in ("stac", "demo")
# The trained model of an experiment x device, as every rule names it.
MODEL = "results/models/{experiment}/{device}/best.pt"


wildcard_constraints:
    area="|".join(re.escape(name) for name in AREAS),
    # cross-validation (rules/loao.smk): a held-out area (loao) or k0, k1, … (folds)
    scheme="loao|folds",
    fold="|".join([*(re.escape(name) for name in LABELLED_AREAS), "k[0-9]+"]),
    experiment="|".join(re.escape(name) for name in EXPERIMENTS),
    device="cpu|cuda|mps",


def name_regex(names):
    """A wildcard constraint matching exactly ``names``; one that matches nothing when
    there are none (an empty pattern would match the empty string)."""
    return "|".join(re.escape(name) for name in names) or "(?!)"


def get_demo_bucket(wildcards):
    """The demo bucket when a source reads from it, so that it is generated first."""
    return DEMO_ROOT if needs_demo_bucket(config) else []


def get_source(section):
    """The `imagery` or `labels` section with its root resolved (demo bucket, default URL)."""
    return config[section] | {"root": source_root(section, config[section], DEMO_ROOT)}


def get_local_files(section):
    """An input function: the local files the `imagery` or `labels` source reads (each
    band's file of a `{band}` pattern or folder), none for other kinds; replacing one
    reruns its acquisition and what depends on it; with `imagery.items`, the area's
    pinned scene list, so that editing it reruns the area."""
    return lambda wildcards: source_inputs(section, config[section], wildcards.area)


def get_bbox(wildcards):
    """The area's [west, south, east, north] in degrees; None for a pixel window."""
    bbox = AREAS[wildcards.area].bbox
    return None if bbox is None else list(bbox)


def get_window(wildcards):
    """The area's pixel window of the local files ([col, row, width, height] or "all");
    None for an area given by a bbox."""
    window = AREAS[wildcards.area].window
    return list(window) if isinstance(window, tuple) else window


def get_demo_areas():
    """Areas as plain dicts for the demo generator (pixel windows have no place in it)."""
    return {
        name: {"bbox": list(area.bbox), "landscape": area.landscape}
        for name, area in AREAS.items()
        if area.bbox is not None
    }


def get_clear_count():
    """The composite's clear-look count of an area (written by kinds stac and demo), as
    the named input `clear_count` of plot_area; none for other kinds."""
    return {"clear_count": "resources/raw/{area}/clear_count.tif"} if COMPOSITE else {}


def get_patch_indexes(wildcards):
    """Per-area patch indexes of the labelled areas."""
    return expand("results/patches/{area}/index.parquet", area=LABELLED_AREAS)


def get_experiment_model(wildcards):
    """The experiment's `model` settings (defaults filled, overrides applied)."""
    return EXPERIMENTS[wildcards.experiment]["model"]


def get_experiment_training(wildcards):
    """The experiment's `training` settings (defaults filled, overrides applied)."""
    return EXPERIMENTS[wildcards.experiment]["training"]


def get_experiment_seed(wildcards):
    """The seed of the experiment's training: its `training.seed`, else the config's."""
    return experiment_seed(EXPERIMENTS[wildcards.experiment], config["seed"])


def get_map_threads(wildcards, input):
    """Threads of a map: one for a small area, whose job is mostly start-up and model
    loading that a second thread does not speed up (two such jobs run side by side
    instead), two otherwise (`--set-threads predict_area=N` gives more)."""
    return map_threads(input.image)


def get_patch_stores():
    """Every labelled area's patch arrays, in the order of LABELLED_AREAS (named inputs
    of train_model)."""
    return {
        "images": expand("results/patches/{area}/images.npy", area=LABELLED_AREAS),
        "labels": expand("results/patches/{area}/labels.npy", area=LABELLED_AREAS),
    }


def get_model_kind(wildcards):
    """The experiment's `model.kind` (the registry of landcover.models)."""
    return EXPERIMENTS[wildcards.experiment]["model"]["kind"]


def get_gpus(wildcards):
    """GPUs a job holds: one for cuda jobs of a kind that uses one (profiles may raise
    train_model's to N); none for a kind that runs on the CPU (the per-pixel model); an
    ensemble holds one when one of its members' kinds uses one."""
    model = EXPERIMENTS[wildcards.experiment]["model"]
    members = [EXPERIMENTS[m]["model"]["kind"] for m in model["members"]]
    kinds = [model_kind(kind) for kind in members or [model["kind"]]]
    return 1 if wildcards.device == "cuda" and any(k.uses_gpu for k in kinds) else 0


def get_onnx_model(wildcards):
    """export_model's model.onnx, mapped with onnxruntime, when `predict.engine` is onnx
    and the experiment is a network; none otherwise (an ensemble's members and the
    leave-one-area-out chains export theirs inside the mapping job)."""
    kind = EXPERIMENTS[wildcards.experiment]["model"]["kind"]
    if config["predict"]["engine"] != "onnx" or kind != "segmentation":
        return []
    return "results/models/{experiment}/{device}/model.onnx"


def get_ensemble_members(wildcards):
    """The trained models an ensemble averages (train_model's `members` input): its
    members' best.pt on the same device, in the same chain (a cross-validation fold's
    own); none for another kind."""
    members = EXPERIMENTS[wildcards.experiment]["model"]["members"]
    if "fold" in wildcards.keys():
        return expand(
            FOLD_MODEL,
            scheme=wildcards.scheme,
            fold=wildcards.fold,
            experiment=members,
            device=wildcards.device,
        )
    return expand(MODEL, experiment=members, device=wildcards.device)


def get_ensemble_member_kinds(wildcards):
    """An ensemble's members as `{experiment, kind}`, in the order of `model.members` (and
    of get_ensemble_members); none for another kind."""
    members = EXPERIMENTS[wildcards.experiment]["model"]["members"]
    return [{"experiment": m, "kind": EXPERIMENTS[m]["model"]["kind"]} for m in members]


def optional_map_outputs(stem):
    """The rasters `predict` switches on beside the map `{stem}.tif` (unpacked as outputs):
    `{stem}_confidence.tif` (`predict.confidence`), `{stem}_probabilities.tif`
    (`predict.probabilities`)."""
    switches = {"confidence": "_confidence.tif", "probabilities": "_probabilities.tif"}
    return {
        name: f"{stem}{suffix}"
        for name, suffix in switches.items()
        if config["predict"][name]
    }


def legend_outputs(stem):
    """The class names written beside the class raster `{stem}.tif` (unpacked as outputs):
    `{stem}.qml` (QGIS style) and `{stem}.tif.aux.xml` (GDAL's categories and attribute
    table); declared so that a deleted one reruns its job and a failed job removes them.
    """
    return {"qml": f"{stem}.qml", "aux_xml": f"{stem}.tif.aux.xml"}


def get_eval_areas():
    """Areas scored: the holdout areas, or every labelled area (on its validation blocks)
    if none."""
    return list(config["holdout"]) or list(LABELLED_AREAS)


def get_eval_maps(wildcards):
    """Maps of the scored areas, in the order of get_eval_areas()."""
    return expand(
        "results/maps/{experiment}/{device}/{area}.tif",
        experiment=wildcards.experiment,
        device=wildcards.device,
        area=get_eval_areas(),
    )


def get_eval_maps_mmu(wildcards):
    """The scored areas' maps cleaned to the minimum mapping unit (rule sieve_map)."""
    return expand(
        "results/maps/{experiment}/{device}/{area}_mmu.tif",
        experiment=wildcards.experiment,
        device=wildcards.device,
        area=get_eval_areas(),
    )


def get_eval_labels(wildcards):
    """Aligned labels of the scored areas, in the order of get_eval_areas()."""
    return expand("results/aligned/{area}/labels.tif", area=get_eval_areas())


def get_area_labels(wildcards):
    """The area's aligned labels (plot_area's reference panel); none for an area without
    labels, whose figure has no reference panel."""
    if wildcards.area in UNLABELLED_AREAS:
        return []
    return "results/aligned/{area}/labels.tif"


def get_unlabelled_maps(wildcards):
    """Maps of the areas without labels (listed unscored in proportions.csv)."""
    return expand(
        "results/maps/{experiment}/{device}/{area}.tif",
        experiment=wildcards.experiment,
        device=wildcards.device,
        area=UNLABELLED_AREAS,
    )


def get_unlabelled_images(wildcards):
    """Aligned images of the areas without labels (their chips are in its tags), in the
    order of UNLABELLED_AREAS."""
    return expand("results/aligned/{area}/image.tif", area=UNLABELLED_AREAS)


def get_fold_holdout(wildcards):
    """The area a leave-one-area-out fold holds out, as the list `holdout` params take."""
    return [wildcards.fold]


def get_loao_targets(wildcards=None):
    """Leave-one-area-out summaries of every experiment x device (needs 2 labelled areas
    or more)."""
    check_leave_one_area_out(AREAS)
    return expand(
        "results/loao/{experiment}/{device}/summary.csv",
        experiment=EXPERIMENTS,
        device=DEVICES,
    )


def get_fold_names(wildcards):
    """The folds of a scheme, in the summary's row order: every labelled area (loao),
    k0 … (folds)."""
    if wildcards.scheme == "loao":
        return list(LABELLED_AREAS)
    return fold_names(check_folds(config["evaluate"]["folds"]))


def get_fold_areas(wildcards):
    """Areas a fold maps and scores: the held-out area (loao); every labelled area
    (folds: the blocks of an area with K blocks or more are dealt over all K folds)."""
    return [wildcards.fold] if wildcards.scheme == "loao" else list(LABELLED_AREAS)


def get_fold_scenes(wildcards):
    """Areas a fold scores over the whole scene (the held-out area of loao); the other
    areas are scored on the fold's test blocks (split `holdout` of its index)."""
    return [wildcards.fold] if wildcards.scheme == "loao" else []


def get_fold_maps(wildcards):
    """The fold's maps of get_fold_areas, in that order."""
    return expand(
        "results/{scheme}/{fold}/maps/{experiment}/{device}/{area}.tif",
        scheme=wildcards.scheme,
        fold=wildcards.fold,
        experiment=wildcards.experiment,
        device=wildcards.device,
        area=get_fold_areas(wildcards),
    )


def get_fold_labels(wildcards):
    """The aligned labels of get_fold_areas, in that order."""
    return expand("results/aligned/{area}/labels.tif", area=get_fold_areas(wildcards))


def get_fold_scores(name):
    """An input function: the fold's `name` (metrics.json, per_class_iou.csv) of every
    fold of the scheme, in the order of get_fold_names."""
    return lambda wildcards: expand(
        "results/{scheme}/{fold}/eval/{experiment}/{device}/{name}",
        scheme=wildcards.scheme,
        fold=get_fold_names(wildcards),
        experiment=wildcards.experiment,
        device=wildcards.device,
        name=name,
    )


def get_kfold_targets(wildcards=None):
    """k-fold summaries of every experiment x device (needs evaluate.folds)."""
    check_folds(config["evaluate"]["folds"])
    return expand(
        "results/folds/{experiment}/{device}/summary.csv",
        experiment=EXPERIMENTS,
        device=DEVICES,
    )


def get_all_metrics(wildcards):
    """metrics.json of every experiment x device."""
    return expand(
        "results/eval/{experiment}/{device}/metrics.json",
        experiment=EXPERIMENTS,
        device=DEVICES,
    )


def get_eval_targets():
    """Per-class IoU tables of every experiment x device (and of the maps cleaned to the
    minimum mapping unit, when `predict.min_mapping_unit` is set; and the chips' class
    proportions for kind chips)."""
    cleaned = ["mmu/"] if config["predict"]["min_mapping_unit"] else []
    tables = expand(
        "results/eval/{experiment}/{device}/{variant}per_class_iou.csv",
        experiment=EXPERIMENTS,
        device=DEVICES,
        variant=["", *cleaned],
    )
    return tables + get_proportion_targets()


def get_proportion_targets():
    """Each chip's class proportions and KL (kind chips), per experiment x device."""
    if config["labels"]["kind"] != "chips":
        return []
    return expand(
        "results/eval/{experiment}/{device}/proportions.csv",
        experiment=EXPERIMENTS,
        device=DEVICES,
    )


def get_map_targets():
    """Maps of every area for every experiment x device, with their class names beside
    them (a deleted style is made again by the next run)."""
    return (
        expand(
            "results/maps/{experiment}/{device}/{area}{suffix}",
            experiment=EXPERIMENTS,
            device=DEVICES,
            area=AREAS,
            suffix=[".tif", ".qml", ".tif.aux.xml"],
        )
        + get_chip_map_targets()
    )


def get_chip_map_targets():
    """Kind chips: each area's map cut into one GeoTIFF per chip, on its footprint."""
    if config["imagery"]["kind"] != "chips":
        return []
    return expand(
        "results/maps/{experiment}/{device}/{area}_chips",
        experiment=EXPERIMENTS,
        device=DEVICES,
        area=AREAS,
    )


def get_figure_targets():
    """All figures of the report."""
    runs = expand(
        "results/figures/{experiment}/{device}/{figure}.png",
        experiment=EXPERIMENTS,
        device=DEVICES,
        figure=["per_class_iou", "confusion", "learning_curves"],
    )
    areas = expand(
        "results/figures/{experiment}/{device}/area_{area}.png",
        experiment=EXPERIMENTS,
        device=DEVICES,
        area=AREAS,
    )
    several = len(EXPERIMENTS) * len(DEVICES) > 1
    return runs + areas + (["results/figures/leaderboard.png"] if several else [])


def get_final_output(runtimes=True):
    """What `snakemake` builds by default: maps, scores, figures, the leaderboard, the
    leave-one-area-out and k-fold summaries when switched on and (last, as it gathers the
    benchmark files of all the others) the run-time table."""
    outputs = [
        *get_map_targets(),
        *get_eval_targets(),
        *get_figure_targets(),
        "results/experiments.csv",
    ]
    if LEAVE_ONE_AREA_OUT:
        outputs += get_loao_targets()
    if config["evaluate"]["folds"]:
        outputs += get_kfold_targets()
    if runtimes:
        outputs += ["results/runtime/runtimes.csv", "results/runtime/runtimes.png"]
    return outputs
