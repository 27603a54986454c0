from pathlib import Path

from landcover.runtime import configure_logging
from landcover.training import train_model

configure_logging(snakemake.log[0])
cuda = snakemake.wildcards.device == "cuda"
train_model(
    patches_dir=snakemake.params.patches_dir,
    index=snakemake.input.index,
    class_weights=snakemake.input.class_weights,
    out_dir=Path(snakemake.output.best).parent,
    bands=snakemake.params.bands,
    classes=snakemake.params.classes,
    model=snakemake.params.model,
    training=snakemake.params.training,
    device=snakemake.wildcards.device,
    threads=snakemake.threads,
    seed=snakemake.params.seed,
    processes=snakemake.resources.gpu if cuda else 1,  # gpu=N: N DDP processes
)
