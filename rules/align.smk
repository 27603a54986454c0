# Put imagery and labels of an area on one pixel grid.


rule align_area:
    input:
        imagery="resources/raw/{area}/imagery.tif",
        labels="resources/raw/{area}/labels.tif",
    output:
        **legend_outputs("results/aligned/{area}/labels"),
        image="results/aligned/{area}/image.tif",
        labels="results/aligned/{area}/labels.tif",
    log:
        "logs/align_area/{area}.log",
    benchmark:
        "benchmarks/align_area/{area}.tsv"
    conda:
        "../envs/geo.yaml"
    threads: 2
    resources:
        mem_mb=2000,
    params:
        bbox=get_bbox,
        window=get_window,
        classes=lookup(dpath="classes", within=config),
        ignore_codes=lookup(dpath="ignore_codes", within=config),
        resolution=lookup(dpath="grid/resolution", within=config),
        crs=lookup(dpath="grid/crs", within=config),
        label_resampling=lookup(dpath="grid/label_resampling", within=config),
    script:
        "../scripts/align_area.py"
