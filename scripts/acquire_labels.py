from landcover.acquire import acquire_labels
from landcover.runtime import configure_logging

configure_logging(snakemake.log[0])
acquire_labels(
    area=snakemake.wildcards.area,
    bbox=snakemake.params.bbox,
    kind=snakemake.params.kind,
    root=snakemake.params.root,
    version=snakemake.params.version,
    out=snakemake.output.labels,
)
