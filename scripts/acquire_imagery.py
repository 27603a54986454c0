from landcover.acquire import acquire_imagery
from landcover.runtime import configure_logging

configure_logging(snakemake.log[0])
acquire_imagery(
    area=snakemake.wildcards.area,
    bbox=snakemake.params.bbox,
    kind=snakemake.params.kind,
    root=snakemake.params.root,
    collection=snakemake.params.collection,
    dates=snakemake.params.dates,
    max_cloud=snakemake.params.max_cloud,
    max_items=snakemake.params.max_items,
    bands=snakemake.params.bands,
    resolution=snakemake.params.resolution,
    out=snakemake.output.imagery,
    # only kind "local" uses scale and offset
    scale=snakemake.params.scale,
    offset=snakemake.params.offset,
)
