# Cut patches, split them spatially and weight the classes.


rule tile_area:
    input:
        image="results/aligned/{area}/image.tif",
        labels="results/aligned/{area}/labels.tif",
    output:
        images="results/patches/{area}/images.npy",
        labels="results/patches/{area}/labels.npy",
        index="results/patches/{area}/index.parquet",
    log:
        "logs/tile_area/{area}.log",
    benchmark:
        "benchmarks/tile_area/{area}.tsv"
    conda:
        "../envs/geo.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        size=lookup(dpath="patches/size", within=config),
        stride=lookup(dpath="patches/stride", within=config),
        min_valid=lookup(dpath="patches/min_valid", within=config),
        dtype=lookup(dpath="patches/dtype", within=config),
        class_names=[c["name"] for c in config["classes"]],
    script:
        "../scripts/tile_area.py"


rule split_patches:
    input:
        indexes=get_patch_indexes,
    output:
        index="results/patches/index.parquet",
    log:
        "logs/split_patches.log",
    benchmark:
        "benchmarks/split_patches.tsv"
    conda:
        "../envs/geo.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        holdout=lookup(dpath="holdout", within=config),
        method=lookup(dpath="split/method", within=config),
        block_size=lookup(dpath="split/block_size", within=config),
        buffer=lookup(dpath="split/buffer", within=config),
        val_fraction=lookup(dpath="split/val_fraction", within=config),
        seed=lookup(dpath="seed", within=config),
    script:
        "../scripts/split_patches.py"


rule class_weights:
    input:
        index="results/patches/index.parquet",
    output:
        weights="results/patches/class_weights.json",
    log:
        "logs/class_weights.log",
    benchmark:
        "benchmarks/class_weights.tsv"
    conda:
        "../envs/geo.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        class_names=[c["name"] for c in config["classes"]],
        method=lookup(dpath="class_weights/method", within=config),
        beta=lookup(dpath="class_weights/beta", within=config),
        max_weight=lookup(dpath="class_weights/max_weight", within=config),
    script:
        "../scripts/class_weights.py"
