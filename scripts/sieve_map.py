from landcover.mapping.cleanup import sieve_map
from landcover.runtime import configure_logging

configure_logging(snakemake.log[0])
sieve_map(
    map_path=snakemake.input.map,
    out=snakemake.output.map,
    size=snakemake.params.size,
)
