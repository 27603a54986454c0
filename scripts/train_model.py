from pathlib import Path

from landcover.runtime import configure_logging
from landcover.training import train_model

configure_logging(snakemake.log[0])
device = snakemake.wildcards.device
train_model(
    patches_dir=Path(snakemake.input.index).parent,
    index=snakemake.input.index,
    class_weights=snakemake.input.class_weights,
    out_dir=Path(snakemake.output.best).parent,
    bands=snakemake.params.bands,
    classes=snakemake.params.classes,
    model=snakemake.params.model,
    training=snakemake.params.training,
    device=device,
    threads=snakemake.threads,
    seed=snakemake.params.seed,
    # gpu=N on a CUDA job: N DistributedDataParallel processes, started by train_model
    processes=snakemake.resources.get("gpu", 1) if device == "cuda" else 1,
)
