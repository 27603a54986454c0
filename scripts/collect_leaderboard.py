from landcover.evaluation.tables import leaderboard
from landcover.runtime import configure_logging

configure_logging(snakemake.log[0])
leaderboard(
    metrics=snakemake.input.metrics,
    out=snakemake.output.table,
    model_kinds=snakemake.params.model_kinds,
    page=snakemake.output.page,
)
