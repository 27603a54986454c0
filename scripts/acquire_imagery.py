from landcover.runtime import configure_logging
from landcover.sources import acquire_imagery

configure_logging(snakemake.log[0])
acquire_imagery(
    area=snakemake.wildcards.area,
    bbox=snakemake.params.bbox,
    window=snakemake.params.window,
    resolution=snakemake.params.resolution,
    out=snakemake.output.imagery,
    **snakemake.params.source,  # kind, root and the kind's settings
)
