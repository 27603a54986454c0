from landcover.runtime import configure_logging
from landcover.sources import acquire_labels

configure_logging(snakemake.log[0])
acquire_labels(
    area=snakemake.wildcards.area,
    bbox=snakemake.params.bbox,
    window=snakemake.params.window,
    out=snakemake.output.labels,
    **snakemake.params.source,  # kind, root and the kind's settings
)
