# Stream the area's window of imagery and labels from their sources.


rule make_demo_bucket:
    output:
        root=directory(DEMO_ROOT),
    log:
        "logs/make_demo_bucket.log",
    benchmark:
        "benchmarks/make_demo_bucket.tsv"
    conda:
        "../envs/geo.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        areas=get_demo_areas(),
        dates=lookup(dpath="imagery/dates", within=config),
        n_dates=lookup(dpath="demo/n_dates", within=config),
        seed=lookup(dpath="seed", within=config),
    script:
        "../scripts/make_demo_bucket.py"


rule acquire_imagery:
    input:
        bucket=get_demo_bucket,
        # kind local: the user's file(s), so that replacing one reruns the area
        local=get_local_files("imagery"),
    output:
        # kind stac and demo also write the items used (a copy pins them: imagery.items)
        # and the clear-look count per pixel, beside the composite
        **(
            {
                "scenes": "resources/raw/{area}/items.json",
                "clear_count": "resources/raw/{area}/clear_count.tif",
            }
            if COMPOSITE
            else {}
        ),
        imagery="resources/raw/{area}/imagery.tif",
    log:
        "logs/acquire_imagery/{area}.log",
    benchmark:
        "benchmarks/acquire_imagery/{area}.tsv"
    conda:
        "../envs/geo.yaml"
    threads: 2
    resources:
        mem_mb=2000,
    params:
        bbox=get_bbox,
        window=get_window,
        # the `imagery` section, root resolved: the kind's module takes the keys it names
        source=get_source("imagery"),
        resolution=lookup(dpath="grid/resolution", within=config),
    script:
        "../scripts/acquire_imagery.py"


rule acquire_labels:
    input:
        bucket=get_demo_bucket,
        # kind local: the user's file(s), so that replacing one reruns the area
        local=get_local_files("labels"),
    output:
        labels="resources/raw/{area}/labels.tif",
    log:
        "logs/acquire_labels/{area}.log",
    benchmark:
        "benchmarks/acquire_labels/{area}.tsv"
    conda:
        "../envs/geo.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    params:
        bbox=get_bbox,
        window=get_window,
        source=get_source("labels"),
    script:
        "../scripts/acquire_labels.py"
