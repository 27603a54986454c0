from landcover.report.figures import plot_learning_curves
from landcover.runtime import configure_logging

configure_logging(snakemake.log[0])
wildcards = snakemake.wildcards
plot_learning_curves(
    history=snakemake.input.history,
    out=snakemake.output.png,
    title=f"{wildcards.experiment} ({wildcards.device})",
)
