from landcover.evaluation.loao import loao_summary
from landcover.runtime import configure_logging

configure_logging(snakemake.log[0])
loao_summary(
    metrics=snakemake.input.metrics,
    per_class=snakemake.input.per_class,
    areas=snakemake.params.areas,
    out=snakemake.output.table,
)
