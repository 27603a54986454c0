from landcover.models import Outputs, train
from landcover.prepare.store import stores
from landcover.runtime import configure_logging

configure_logging(snakemake.log[0])
out, params = snakemake.output, snakemake.params
paths = snakemake.input.get("members", [])  # an ensemble's members, else none
members = [m | {"path": p} for m, p in zip(params.members, paths, strict=False)]
train(
    params.model["kind"],
    stores=stores(params.areas, snakemake.input.images, snakemake.input.labels),
    index=snakemake.input.index,
    class_weights=snakemake.input.class_weights,
    outputs=Outputs(out.best, out.last, out.history, out.hardware),
    bands=params.bands,
    classes=params.classes,
    model=params.model,
    training=params.training,
    device=snakemake.wildcards.device,
    threads=snakemake.threads,
    seed=params.seed,
    processes=snakemake.resources.gpu if snakemake.wildcards.device == "cuda" else 1,
    members=members,
)
