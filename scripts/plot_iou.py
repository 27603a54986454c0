from landcover.report.figures import plot_iou
from landcover.runtime import configure_logging

configure_logging(snakemake.log[0])
wildcards = snakemake.wildcards
plot_iou(
    per_class=snakemake.input.per_class,
    out=snakemake.output.png,
    classes=snakemake.params.classes,
    title=f"Per-class IoU: {wildcards.experiment} ({wildcards.device})",
)
