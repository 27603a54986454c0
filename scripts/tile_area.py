from landcover.prepare.tiling import tile_area
from landcover.runtime import configure_logging

configure_logging(snakemake.log[0])
tile_area(
    area=snakemake.wildcards.area,
    image=snakemake.input.image,
    labels=snakemake.input.labels,
    out_images=snakemake.output.images,
    out_labels=snakemake.output.labels,
    out_index=snakemake.output.index,
    size=snakemake.params.size,
    stride=snakemake.params.stride,
    min_valid=snakemake.params.min_valid,
    class_names=snakemake.params.class_names,
    dtype=snakemake.params.dtype,
)
