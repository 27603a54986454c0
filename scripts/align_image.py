from landcover.prepare.align import align_image
from landcover.runtime import configure_logging

configure_logging(snakemake.log[0])
align_image(
    area=snakemake.wildcards.area,
    bbox=snakemake.params.bbox,
    window=snakemake.params.window,
    imagery=snakemake.input.imagery,
    out_image=snakemake.output.image,
    resolution=snakemake.params.resolution,
    crs=snakemake.params.crs,
    threads=snakemake.threads,
)
