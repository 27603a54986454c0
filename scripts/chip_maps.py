from landcover.mapping.chips import split_map
from landcover.runtime import configure_logging

configure_logging(snakemake.log[0])
split_map(
    map_path=snakemake.input.map,
    image=snakemake.input.image,
    out_dir=snakemake.output.chips,
)
