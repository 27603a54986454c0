# Figures of the report.


rule plot_area:
    input:
        # kinds stac and demo: the composite's clear looks per pixel, a fourth panel
        **get_clear_count(),
        image="results/aligned/{area}/image.tif",
        # the reference panel; none for an area without labels (labelled: false)
        labels=get_area_labels,
        map="results/maps/{experiment}/{device}/{area}.tif",
    output:
        png=report(
            "results/figures/{experiment}/{device}/area_{area}.png",
            caption="../report/area.rst",
            category="Maps",
            subcategory="{experiment}/{device}",
            labels={"area": "{area}", "file": "figure"},
        ),
    log:
        "logs/plot_area/{experiment}/{device}/{area}.log",
    benchmark:
        "benchmarks/plot_area/{experiment}/{device}/{area}.tsv"
    conda:
        "../envs/plot.yaml"
    threads: 1
    resources:
        mem_mb=1500,
    params:
        classes=lookup(dpath="classes", within=config),
        ignore_codes=lookup(dpath="ignore_codes", within=config),
    script:
        "../scripts/plot_area.py"


rule plot_iou:
    input:
        per_class="results/eval/{experiment}/{device}/per_class_iou.csv",
    output:
        png=report(
            "results/figures/{experiment}/{device}/per_class_iou.png",
            caption="../report/iou.rst",
            category="Evaluation",
            subcategory="{experiment}/{device}",
            labels={"figure": "per-class IoU"},
        ),
    log:
        "logs/plot_iou/{experiment}/{device}.log",
    benchmark:
        "benchmarks/plot_iou/{experiment}/{device}.tsv"
    conda:
        "../envs/plot.yaml"
    threads: 1
    resources:
        mem_mb=500,
    params:
        classes=lookup(dpath="classes", within=config),
    script:
        "../scripts/plot_iou.py"


rule plot_confusion:
    input:
        confusion="results/eval/{experiment}/{device}/confusion.csv",
    output:
        png=report(
            "results/figures/{experiment}/{device}/confusion.png",
            caption="../report/confusion.rst",
            category="Evaluation",
            subcategory="{experiment}/{device}",
            labels={"figure": "confusion matrix"},
        ),
    log:
        "logs/plot_confusion/{experiment}/{device}.log",
    benchmark:
        "benchmarks/plot_confusion/{experiment}/{device}.tsv"
    conda:
        "../envs/plot.yaml"
    threads: 1
    resources:
        mem_mb=500,
    script:
        "../scripts/plot_confusion.py"


rule plot_learning_curves:
    input:
        history="results/models/{experiment}/{device}/history.csv",
    output:
        png=report(
            "results/figures/{experiment}/{device}/learning_curves.png",
            caption="../report/learning_curves.rst",
            category="Training",
            subcategory="{experiment}/{device}",
            labels={"figure": "learning curves"},
        ),
    log:
        "logs/plot_learning_curves/{experiment}/{device}.log",
    benchmark:
        "benchmarks/plot_learning_curves/{experiment}/{device}.tsv"
    conda:
        "../envs/plot.yaml"
    threads: 1
    resources:
        mem_mb=500,
    script:
        "../scripts/plot_learning_curves.py"


rule plot_leaderboard:
    input:
        table="results/experiments.csv",
    output:
        png=report(
            "results/figures/leaderboard.png",
            caption="../report/leaderboard.rst",
            category="Experiments",
            labels={"figure": "leaderboard"},
        ),
    log:
        "logs/plot_leaderboard.log",
    benchmark:
        "benchmarks/plot_leaderboard.tsv"
    conda:
        "../envs/plot.yaml"
    threads: 1
    resources:
        mem_mb=500,
    script:
        "../scripts/plot_leaderboard.py"
