# Leave-one-area-out (evaluate.leave_one_area_out, or the `loao` target): each area held
# out in turn (the {holdout} wildcard). The main chain's rules are reused with other
# paths: the patch arrays of results/patches/{area}/ are shared, the split and the class
# weights are the fold's own.

# A fold's trained model, as its rules name it.
LOAO_MODEL = "results/loao/{holdout}/models/{experiment}/{device}/best.pt"


use rule split_patches as loao_split_patches with:
    output:
        index="results/loao/{holdout}/patches/index.parquet",
    log:
        "logs/loao_split_patches/{holdout}.log",
    benchmark:
        "benchmarks/loao_split_patches/{holdout}.tsv"
    params:
        holdout=get_fold_holdout,
        # the held-out area is neither trained nor validated on (landcover.evaluation.loao)
        method=FOLD_SPLIT_METHOD,


use rule class_weights as loao_class_weights with:
    input:
        index="results/loao/{holdout}/patches/index.parquet",
    output:
        weights="results/loao/{holdout}/patches/class_weights.json",
    log:
        "logs/loao_class_weights/{holdout}.log",
    benchmark:
        "benchmarks/loao_class_weights/{holdout}.tsv"


use rule train_model as loao_train_model with:
    input:
        **get_patch_stores(),
        index="results/loao/{holdout}/patches/index.parquet",
        class_weights="results/loao/{holdout}/patches/class_weights.json",
        members=get_ensemble_members,
    output:
        best=LOAO_MODEL,
        last="results/loao/{holdout}/models/{experiment}/{device}/last.pt",
        history="results/loao/{holdout}/models/{experiment}/{device}/history.csv",
        hardware="results/loao/{holdout}/models/{experiment}/{device}/hardware.json",
    log:
        "logs/loao_train_model/{holdout}/{experiment}/{device}.log",
    benchmark:
        "benchmarks/loao_train_model/{holdout}/{experiment}/{device}.tsv"


use rule predict_area as loao_predict_area with:
    input:
        model=LOAO_MODEL,
        image="results/aligned/{holdout}/image.tif",
        members=get_ensemble_members,
    output:
        **optional_map_outputs(
            "results/loao/{holdout}/maps/{experiment}/{device}/{holdout}"
        ),
        **legend_outputs("results/loao/{holdout}/maps/{experiment}/{device}/{holdout}"),
        map="results/loao/{holdout}/maps/{experiment}/{device}/{holdout}.tif",
    log:
        "logs/loao_predict_area/{holdout}/{experiment}/{device}.log",
    benchmark:
        "benchmarks/loao_predict_area/{holdout}/{experiment}/{device}.tsv"


use rule evaluate as loao_evaluate with:
    input:
        # lists: the evaluation takes one map and one label file per scored area
        maps=["results/loao/{holdout}/maps/{experiment}/{device}/{holdout}.tif"],
        labels=["results/aligned/{holdout}/labels.tif"],
        code=EVALUATE_CODE,
    output:
        per_class="results/loao/{holdout}/eval/{experiment}/{device}/per_class_iou.csv",
        metrics="results/loao/{holdout}/eval/{experiment}/{device}/metrics.json",
        confusion="results/loao/{holdout}/eval/{experiment}/{device}/confusion.csv",
    log:
        "logs/loao_evaluate/{holdout}/{experiment}/{device}.log",
    benchmark:
        "benchmarks/loao_evaluate/{holdout}/{experiment}/{device}.tsv"
    params:
        # the held-out area, scored over its whole scene
        areas=get_fold_holdout,
        holdout=get_fold_holdout,


rule loao_summary:
    input:
        metrics=expand(
            "results/loao/{holdout}/eval/{{experiment}}/{{device}}/metrics.json",
            holdout=AREAS,
        ),
        per_class=expand(
            "results/loao/{holdout}/eval/{{experiment}}/{{device}}/per_class_iou.csv",
            holdout=AREAS,
        ),
    output:
        table=report(
            "results/loao/{experiment}/{device}/summary.csv",
            caption="../report/loao_summary.rst",
            category="Leave-one-area-out",
            subcategory="{experiment}/{device}",
            labels={"table": "leave-one-area-out"},
        ),
    log:
        "logs/loao_summary/{experiment}/{device}.log",
    benchmark:
        "benchmarks/loao_summary/{experiment}/{device}.tsv"
    conda:
        "../envs/geo.yaml"
    threads: 1
    resources:
        mem_mb=500,
    params:
        areas=list(AREAS),
    script:
        "../scripts/loao_summary.py"
