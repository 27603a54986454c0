from landcover.prepare.split import split_patches
from landcover.runtime import configure_logging

configure_logging(snakemake.log[0])
split_patches(
    indexes=snakemake.input.indexes,
    out=snakemake.output.index,
    holdout=snakemake.params.holdout,
    method=snakemake.params.method,
    block_size=snakemake.params.block_size,
    buffer=snakemake.params.buffer,
    val_fraction=snakemake.params.val_fraction,
    seed=snakemake.params.seed,
)
