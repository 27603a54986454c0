# landcover: areas of interest -> streamed imagery and labels -> one pixel grid ->
# patches -> class weights -> U-Net per device -> holdout scores -> maps -> report.
# This file is the table of contents; rules live in rules/, logic in src/landcover/.
from snakemake.utils import min_version

min_version("9.1")


# The demo default, unless a config is given: Snakemake would merge a --configfile into
# this one (adding the demo areas to yours), so it is only read when none is given.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/acquire.smk"
include: "rules/align.smk"
include: "rules/patches.smk"
include: "rules/train.smk"
include: "rules/predict.smk"
include: "rules/evaluate.smk"
include: "rules/loao.smk"
include: "rules/figures.smk"
include: "rules/bench.smk"
include: "rules/export.smk"


rule all:
    default_target: True
    input:
        get_final_output(),


# Named targets beside `all`:
rule data:
    # the data half: acquire -> align -> tile -> split -> class weights
    input:
        "results/patches/class_weights.json",


rule models:
    # trained models of every experiment x device
    input:
        expand(MODEL, experiment=EXPERIMENTS, device=DEVICES),


rule maps:
    input:
        get_map_targets(),


rule per_class_iou:
    # the evaluation tables (reruns only the evaluation when maps exist)
    input:
        get_eval_targets(),


rule figures:
    input:
        get_figure_targets(),


rule onnx:
    # segmentation networks as ONNX with a STAC MLM item each (rule export_model)
    input:
        expand(
            "results/models/{experiment}/{device}/{file}",
            experiment=ONNX_EXPERIMENTS,
            device=DEVICES,
            file=["model.onnx", "mlm.json"],
        ),


rule loao:
    # leave-one-area-out: each area held out in turn, one summary per experiment x device
    input:
        get_loao_targets,


rule folds:
    # k-fold cross-validation over the spatial blocks (evaluate.folds: K), one summary per
    # experiment x device
    input:
        get_kfold_targets,
