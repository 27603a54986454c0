# Score the maps of the held-out areas (or blocks) per class.


rule evaluate:
    input:
        maps=get_eval_maps,
        labels=get_eval_labels,
        index="results/patches/index.parquet",
        # the evaluation code, so that changing it reruns the evaluation: Snakemake's
        # code trigger sees a rule's script but not the library it calls (snakemake#2192)
        code=EVALUATE_CODE,
    output:
        per_class=report(
            "results/eval/{experiment}/{device}/per_class_iou.csv",
            caption="../report/per_class_iou.rst",
            category="Evaluation",
            subcategory="{experiment}/{device}",
            labels={"table": "per-class IoU"},
        ),
        metrics=report(
            "results/eval/{experiment}/{device}/metrics.json",
            caption="../report/metrics.rst",
            category="Evaluation",
            subcategory="{experiment}/{device}",
            labels={"table": "metrics"},
        ),
        confusion="results/eval/{experiment}/{device}/confusion.csv",
    log:
        "logs/evaluate/{experiment}/{device}.log",
    benchmark:
        "benchmarks/evaluate/{experiment}/{device}.tsv"
    conda:
        "../envs/geo.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        classes=lookup(dpath="classes", within=config),
        ignore_codes=lookup(dpath="ignore_codes", within=config),
        areas=get_eval_areas(),
        holdout=lookup(dpath="holdout", within=config),
        evaluate=lookup(dpath="evaluate", within=config),
    script:
        "../scripts/evaluate.py"


use rule evaluate as evaluate_mmu with:
    # the same scores of the maps cleaned to the minimum mapping unit (predict.min_mapping_unit)
    input:
        maps=get_eval_maps_mmu,
        labels=get_eval_labels,
        index="results/patches/index.parquet",
        code=EVALUATE_CODE,
    output:
        per_class="results/eval/{experiment}/{device}/mmu/per_class_iou.csv",
        metrics="results/eval/{experiment}/{device}/mmu/metrics.json",
        confusion="results/eval/{experiment}/{device}/mmu/confusion.csv",
    log:
        "logs/evaluate_mmu/{experiment}/{device}.log",
    benchmark:
        "benchmarks/evaluate_mmu/{experiment}/{device}.tsv"


rule collect_leaderboard:
    input:
        metrics=get_all_metrics,
    output:
        table=report(
            "results/experiments.csv",
            caption="../report/leaderboard_table.rst",
            category="Experiments",
            labels={"table": "leaderboard"},
        ),
        # the leaderboard as the report's first page shows it (report/workflow.rst)
        page="results/leaderboard.rst",
    log:
        "logs/collect_leaderboard.log",
    benchmark:
        "benchmarks/collect_leaderboard.tsv"
    conda:
        "../envs/geo.yaml"
    threads: 1
    resources:
        mem_mb=500,
    params:
        model_kinds={name: exp["model"]["kind"] for name, exp in EXPERIMENTS.items()},
    script:
        "../scripts/collect_leaderboard.py"


rule chip_proportions:
    # kind chips: each chip's reference and predicted class proportions and their KL; the
    # chips of areas without labels with their predicted proportions only (unscored)
    input:
        maps=get_eval_maps,
        labels=get_eval_labels,
        # their chips are listed in the aligned image's tags
        unlabelled_maps=get_unlabelled_maps,
        unlabelled_images=get_unlabelled_images,
    output:
        table="results/eval/{experiment}/{device}/proportions.csv",
    log:
        "logs/chip_proportions/{experiment}/{device}.log",
    benchmark:
        "benchmarks/chip_proportions/{experiment}/{device}.tsv"
    conda:
        "../envs/geo.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        classes=lookup(dpath="classes", within=config),
        ignore_codes=lookup(dpath="ignore_codes", within=config),
        areas=get_eval_areas(),
        unlabelled=UNLABELLED_AREAS,
        eps=lookup(dpath="evaluate/kl_eps", within=config),
    script:
        "../scripts/chip_proportions.py"
