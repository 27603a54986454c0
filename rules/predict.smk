# Map whole scenes with seamless sliding-window inference.


rule predict_area:
    input:
        model=MODEL,
        image="results/aligned/{area}/image.tif",
        # an ensemble reads its members' models
        members=get_ensemble_members,
        # predict.engine: onnx maps with the exported network
        onnx=get_onnx_model,
    output:
        # predict.confidence: the winning class's probability (0-100), where the map is unsure;
        # predict.probabilities: every class's probability, one band each
        **optional_map_outputs("results/maps/{experiment}/{device}/{area}"),
        **legend_outputs("results/maps/{experiment}/{device}/{area}"),
        # not in the report: a scene-sized COG would bloat the HTML; the figure shows it
        map="results/maps/{experiment}/{device}/{area}.tif",
    log:
        "logs/predict_area/{experiment}/{device}/{area}.log",
    benchmark:
        "benchmarks/predict_area/{experiment}/{device}/{area}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: get_map_threads
    resources:
        mem_mb=3000,
        gpu=get_gpus,
    params:
        kind=get_model_kind,
        classes=lookup(dpath="classes", within=config),
        ignore_codes=lookup(dpath="ignore_codes", within=config),
        predict=lookup(dpath="predict", within=config),
    script:
        "../scripts/predict_area.py"


rule sieve_map:
    # predict.min_mapping_unit: the map with class regions below the unit merged away
    input:
        map="results/maps/{experiment}/{device}/{area}.tif",
    output:
        **legend_outputs("results/maps/{experiment}/{device}/{area}_mmu"),
        map="results/maps/{experiment}/{device}/{area}_mmu.tif",
    log:
        "logs/sieve_map/{experiment}/{device}/{area}.log",
    benchmark:
        "benchmarks/sieve_map/{experiment}/{device}/{area}.tsv"
    conda:
        "../envs/geo.yaml"
    threads: 1
    resources:
        mem_mb=2000,
    params:
        size=lookup(dpath="predict/min_mapping_unit", within=config),
    script:
        "../scripts/sieve_map.py"


rule chip_maps:
    # kind chips: the area's map cut back into one GeoTIFF per chip ({id}.tif), on the
    # chip's own CRS and transform when it had one
    input:
        map="results/maps/{experiment}/{device}/{area}.tif",
        image="results/aligned/{area}/image.tif",
    output:
        chips=directory("results/maps/{experiment}/{device}/{area}_chips"),
    log:
        "logs/chip_maps/{experiment}/{device}/{area}.log",
    benchmark:
        "benchmarks/chip_maps/{experiment}/{device}/{area}.tsv"
    conda:
        "../envs/geo.yaml"
    threads: 1
    resources:
        mem_mb=1000,
    script:
        "../scripts/chip_maps.py"
