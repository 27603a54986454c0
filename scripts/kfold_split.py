from landcover.prepare.folds import kfold_split
from landcover.runtime import configure_logging

configure_logging(snakemake.log[0])
kfold_split(
    index=snakemake.input.index,
    out=snakemake.output.index,
    fold=snakemake.wildcards.fold,
    k=snakemake.params.k,
    buffer=snakemake.params.buffer,
    val_fraction=snakemake.params.val_fraction,
    seed=snakemake.params.seed,
)
