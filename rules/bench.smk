# Device benchmarks (the `bench` target, not part of `all`) and the run-time table.
import os

from landcover.models.segmentation.bench import (
    bench_engines,
    bench_threads,
    check_bench,
    cuda_device_count,
    engine_gpus,
)

# `bench:` in the config (warmup, steps, batch_size, engines); engine names checked here.
BENCH = config["bench"]
check_bench(BENCH)
# Every benchmark job holds all cores of the run (at most the machine's), so that
# Snakemake runs it alone, and the CPU ladder climbs to them: `snakemake --cores 8
# bench` measures 1, 2, 4 and 8 threads, then each CUDA device found.
BENCH_THREADS = bench_threads(workflow.resource_settings.cores)
BENCH_ENGINES = bench_engines(
    BENCH_THREADS,
    cuda_device_count(os.environ.get("CUDA_VISIBLE_DEVICES")),
    BENCH["engines"],
)
BENCH_GPUS = engine_gpus(BENCH_ENGINES)
# The run-time table comes after everything the default run makes (less itself).
RUNTIME_INPUTS = get_final_output(runtimes=False)


rule bench_engine:
    output:
        table="results/bench/engines/{engine}.csv",
    log:
        "logs/bench_engine/{engine}.log",
    benchmark:
        "benchmarks/bench_engine/{engine}.tsv"
    wildcard_constraints:
        engine="|".join(BENCH_ENGINES),
    conda:
        "../envs/torch.yaml"
    threads: BENCH_THREADS
    resources:
        mem_mb=4000,
        gpu=lookup(dpath="{engine}", within=BENCH_GPUS),
    params:
        model=lookup(dpath="model", within=config),
        training=lookup(dpath="training", within=config),
        bands=len(config["imagery"]["bands"]),
        classes=len(config["classes"]),
        patch_size=lookup(dpath="patches/size", within=config),
        batch_size=BENCH["batch_size"],
        warmup=BENCH["warmup"],
        steps=BENCH["steps"],
        seed=lookup(dpath="seed", within=config),
    script:
        "../scripts/bench_engine.py"


rule bench_summary:
    input:
        tables=expand("results/bench/engines/{engine}.csv", engine=BENCH_ENGINES),
    output:
        table=report(
            "results/bench/devices.csv",
            caption="../report/bench_devices.rst",
            category="Benchmarks",
            labels={"table": "devices"},
        ),
    log:
        "logs/bench_summary.log",
    benchmark:
        "benchmarks/bench_summary.tsv"
    conda:
        "../envs/plot.yaml"
    threads: 1
    resources:
        mem_mb=500,
    script:
        "../scripts/bench_summary.py"


rule plot_bench:
    input:
        devices="results/bench/devices.csv",
    output:
        ladder=report(
            "results/bench/device_ladder.png",
            caption="../report/bench_ladder.rst",
            category="Benchmarks",
            labels={"figure": "device ladder"},
        ),
        scaling=report(
            "results/bench/cpu_scaling.png",
            caption="../report/bench_scaling.rst",
            category="Benchmarks",
            labels={"figure": "CPU strong scaling"},
        ),
    log:
        "logs/plot_bench.log",
    benchmark:
        "benchmarks/plot_bench.tsv"
    conda:
        "../envs/plot.yaml"
    threads: 1
    resources:
        mem_mb=500,
    script:
        "../scripts/plot_bench.py"


rule collect_runtimes:
    input:
        RUNTIME_INPUTS,
    output:
        table=report(
            "results/runtime/runtimes.csv",
            caption="../report/bench_runtimes.rst",
            category="Run time",
            labels={"table": "run times"},
        ),
    log:
        "logs/collect_runtimes.log",
    benchmark:
        "benchmarks/collect_runtimes.tsv"
    conda:
        "../envs/plot.yaml"
    threads: 1
    resources:
        mem_mb=500,
    params:
        benchmarks="benchmarks",
    script:
        "../scripts/collect_runtimes.py"


rule plot_runtimes:
    input:
        table="results/runtime/runtimes.csv",
    output:
        png=report(
            "results/runtime/runtimes.png",
            caption="../report/bench_runtimes_figure.rst",
            category="Run time",
            labels={"figure": "run times"},
        ),
    log:
        "logs/plot_runtimes.log",
    benchmark:
        "benchmarks/plot_runtimes.tsv"
    conda:
        "../envs/plot.yaml"
    threads: 1
    resources:
        mem_mb=500,
    script:
        "../scripts/plot_runtimes.py"


rule bench:
    # training and inference throughput per engine: the table and two figures
    input:
        "results/bench/devices.csv",
        "results/bench/device_ladder.png",
        "results/bench/cpu_scaling.png",
