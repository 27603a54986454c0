from landcover.report.figures import plot_confusion
from landcover.runtime import configure_logging

configure_logging(snakemake.log[0])
wildcards = snakemake.wildcards
plot_confusion(
    confusion=snakemake.input.confusion,
    out=snakemake.output.png,
    title=f"Confusion (rows normalised): {wildcards.experiment} ({wildcards.device})",
)
