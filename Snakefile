# landcover: areas of interest -> streamed imagery and labels -> one pixel grid ->
# patches -> class weights -> U-Net per device -> holdout scores -> maps -> report.
# This file is the table of contents; rules live in rules/, logic in src/landcover/.
from snakemake.utils import min_version

min_version("9.1")


configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/acquire.smk"
include: "rules/align.smk"
include: "rules/patches.smk"


rule all:
    default_target: True
    input:
        get_final_output(),


rule data:
    # named target: the data half (acquire -> align -> tile -> split -> class weights)
    input:
        "results/patches/class_weights.json",
