from landcover.evaluation.loao import fold_summary
from landcover.runtime import configure_logging

configure_logging(snakemake.log[0])
fold_summary(
    metrics=snakemake.input.metrics,
    per_class=snakemake.input.per_class,
    folds=snakemake.params.folds,
    out=snakemake.output.table,
    scheme=snakemake.wildcards.scheme,
)
