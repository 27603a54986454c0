# Cross-validation folds: the main chain's rules reused with other paths. Two schemes
# (the {scheme} wildcard, each with its own target):
# - loao, leave-one-area-out (evaluate.leave_one_area_out, target `loao`): a {fold} is a
#   held-out area, mapped and scored over its whole scene; results/loao/{fold}/...
# - folds, k-fold (evaluate.folds: K, target `folds`): a {fold} is k0 ... k{K-1}, a K-th
#   of the spatial blocks, scored on those blocks of every area; results/folds/{fold}/...
# The patch arrays of results/patches/{area}/ are shared; the split and the class weights
# are the fold's own, and so are its models, maps and scores.

# A fold's trained model, as its rules name it.
FOLD_MODEL = "results/{scheme}/{fold}/models/{experiment}/{device}/best.pt"


use rule split_patches as loao_split_patches with:
    output:
        index="results/loao/{fold}/patches/index.parquet",
    log:
        "logs/loao_split_patches/{fold}.log",
    benchmark:
        "benchmarks/loao_split_patches/{fold}.tsv"
    params:
        holdout=get_fold_holdout,
        # the held-out area is neither trained nor validated on (landcover.evaluation.loao)
        method=FOLD_SPLIT_METHOD,


rule kfold_split:
    # fold k tests on its blocks; the others train and validate (landcover.prepare.folds)
    input:
        index="results/patches/index.parquet",
    output:
        index="results/folds/{fold}/patches/index.parquet",
    log:
        "logs/kfold_split/{fold}.log",
    benchmark:
        "benchmarks/kfold_split/{fold}.tsv"
    conda:
        "../envs/geo.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        k=lookup(dpath="evaluate/folds", within=config),
        buffer=lookup(dpath="split/buffer", within=config),
        val_fraction=lookup(dpath="split/val_fraction", within=config),
        seed=lookup(dpath="seed", within=config),
    script:
        "../scripts/kfold_split.py"


use rule class_weights as fold_class_weights with:
    input:
        index="results/{scheme}/{fold}/patches/index.parquet",
    output:
        weights="results/{scheme}/{fold}/patches/class_weights.json",
    log:
        "logs/fold_class_weights/{scheme}/{fold}.log",
    benchmark:
        "benchmarks/fold_class_weights/{scheme}/{fold}.tsv"


use rule train_model as fold_train_model with:
    input:
        **get_patch_stores(),
        index="results/{scheme}/{fold}/patches/index.parquet",
        class_weights="results/{scheme}/{fold}/patches/class_weights.json",
        members=get_ensemble_members,
    output:
        best=FOLD_MODEL,
        last="results/{scheme}/{fold}/models/{experiment}/{device}/last.pt",
        history="results/{scheme}/{fold}/models/{experiment}/{device}/history.csv",
        hardware="results/{scheme}/{fold}/models/{experiment}/{device}/hardware.json",
    log:
        "logs/fold_train_model/{scheme}/{fold}/{experiment}/{device}.log",
    benchmark:
        "benchmarks/fold_train_model/{scheme}/{fold}/{experiment}/{device}.tsv"


use rule predict_area as fold_predict_area with:
    input:
        model=FOLD_MODEL,
        image="results/aligned/{area}/image.tif",
        members=get_ensemble_members,
    output:
        **optional_map_outputs(
            "results/{scheme}/{fold}/maps/{experiment}/{device}/{area}"
        ),
        **legend_outputs("results/{scheme}/{fold}/maps/{experiment}/{device}/{area}"),
        map="results/{scheme}/{fold}/maps/{experiment}/{device}/{area}.tif",
    log:
        "logs/fold_predict_area/{scheme}/{fold}/{experiment}/{device}/{area}.log",
    benchmark:
        "benchmarks/fold_predict_area/{scheme}/{fold}/{experiment}/{device}/{area}.tsv"


use rule evaluate as fold_evaluate with:
    input:
        maps=get_fold_maps,
        labels=get_fold_labels,
        # the fold's split: its test blocks are the windows scored outside the scenes
        index="results/{scheme}/{fold}/patches/index.parquet",
        code=EVALUATE_CODE,
    output:
        per_class="results/{scheme}/{fold}/eval/{experiment}/{device}/per_class_iou.csv",
        metrics="results/{scheme}/{fold}/eval/{experiment}/{device}/metrics.json",
        confusion="results/{scheme}/{fold}/eval/{experiment}/{device}/confusion.csv",
    log:
        "logs/fold_evaluate/{scheme}/{fold}/{experiment}/{device}.log",
    benchmark:
        "benchmarks/fold_evaluate/{scheme}/{fold}/{experiment}/{device}.tsv"
    params:
        areas=get_fold_areas,
        holdout=get_fold_scenes,


rule fold_summary:
    input:
        metrics=get_fold_scores("metrics.json"),
        per_class=get_fold_scores("per_class_iou.csv"),
    output:
        table=report(
            "results/{scheme}/{experiment}/{device}/summary.csv",
            caption="../report/fold_summary.rst",
            category="Cross-validation",
            subcategory="{scheme}: {experiment}/{device}",
            labels={"table": "{scheme} summary"},
        ),
    log:
        "logs/fold_summary/{scheme}/{experiment}/{device}.log",
    benchmark:
        "benchmarks/fold_summary/{scheme}/{experiment}/{device}.tsv"
    conda:
        "../envs/geo.yaml"
    threads: 1
    resources:
        mem_mb=500,
    params:
        folds=get_fold_names,
    script:
        "../scripts/fold_summary.py"
