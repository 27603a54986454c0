from landcover.report.figures import plot_area
from landcover.runtime import configure_logging

configure_logging(snakemake.log[0])
wildcards = snakemake.wildcards
plot_area(
    image=snakemake.input.image,
    labels=snakemake.input.get("labels") or None,  # none for an area without labels
    prediction=snakemake.input.map,
    out=snakemake.output.png,
    classes=snakemake.params.classes,
    ignore_codes=snakemake.params.ignore_codes,
    title=f"{wildcards.area}: {wildcards.experiment} ({wildcards.device})",
    clear_count=snakemake.input.get("clear_count"),
)
