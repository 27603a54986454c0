from landcover.prepare.align import align_area
from landcover.runtime import configure_logging

configure_logging(snakemake.log[0])
align_area(
    area=snakemake.wildcards.area,
    bbox=snakemake.params.bbox,
    window=snakemake.params.window,
    imagery=snakemake.input.imagery,
    labels=snakemake.input.labels,
    out_image=snakemake.output.image,
    out_labels=snakemake.output.labels,
    classes=snakemake.params.classes,
    ignore_codes=snakemake.params.ignore_codes,
    resolution=snakemake.params.resolution,
    crs=snakemake.params.crs,
    label_resampling=snakemake.params.label_resampling,
    threads=snakemake.threads,
)
