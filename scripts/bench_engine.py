from landcover.models.segmentation.bench import bench_engine, write_engine_table
from landcover.runtime import configure_logging

configure_logging(snakemake.log[0])
params = snakemake.params
table = bench_engine(
    engine=snakemake.wildcards.engine,
    model=params.model,
    training=params.training,
    bands=params.bands,
    classes=params.classes,
    patch_size=params.patch_size,
    batch_size=params.batch_size,
    warmup=params.warmup,
    steps=params.steps,
    threads=snakemake.threads,
    seed=params.seed,
)
write_engine_table(table, snakemake.output.table)
