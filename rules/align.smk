# Put imagery and labels of an area on one pixel grid (the imagery alone for an area
# without labels). The two rules make the same image.tif: each takes its own areas.


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
    wildcard_constraints:
        area=name_regex(LABELLED_AREAS),
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


rule align_image:
    # an area with `labelled: false`: its imagery on the same grid, by the same code;
    # its labels are never acquired
    input:
        imagery="resources/raw/{area}/imagery.tif",
    output:
        image="results/aligned/{area}/image.tif",
    log:
        "logs/align_image/{area}.log",
    benchmark:
        "benchmarks/align_image/{area}.tsv"
    wildcard_constraints:
        area=name_regex(UNLABELLED_AREAS),
    conda:
        "../envs/geo.yaml"
    threads: 2
    resources:
        mem_mb=2000,
    params:
        bbox=get_bbox,
        window=get_window,
        resolution=lookup(dpath="grid/resolution", within=config),
        crs=lookup(dpath="grid/crs", within=config),
    script:
        "../scripts/align_image.py"
