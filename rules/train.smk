# Train a model (of the experiment's kind) per experiment and device.


rule train_model:
    input:
        **get_patch_stores(),
        index="results/patches/index.parquet",
        class_weights="results/patches/class_weights.json",
        # an ensemble's members' trained models (model.kind ensemble; none otherwise)
        members=get_ensemble_members,
    output:
        best=MODEL,
        last="results/models/{experiment}/{device}/last.pt",
        history=report(
            "results/models/{experiment}/{device}/history.csv",
            caption="../report/history.rst",
            category="Training",
            subcategory="{experiment}/{device}",
            labels={"table": "history"},
        ),
        hardware="results/models/{experiment}/{device}/hardware.json",
    log:
        "logs/train_model/{experiment}/{device}.log",
    benchmark:
        "benchmarks/train_model/{experiment}/{device}.tsv"
    conda:
        "../envs/torch.yaml"
    # no shadow: the per-epoch resume state beside the outputs must survive a crash
    threads: 8
    resources:
        mem_mb=6000,
        gpu=get_gpus,
    params:
        areas=LABELLED_AREAS,
        model=get_experiment_model,
        training=get_experiment_training,
        bands=lookup(dpath="imagery/bands", within=config),
        classes=lookup(dpath="classes", within=config),
        seed=get_experiment_seed,
        members=get_ensemble_member_kinds,
    script:
        "../scripts/train_model.py"
