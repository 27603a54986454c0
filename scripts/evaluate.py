from landcover.evaluation.scoring import evaluate
from landcover.runtime import configure_logging

configure_logging(snakemake.log[0])
evaluate(
    maps=snakemake.input.maps,
    labels=snakemake.input.labels,
    index=snakemake.input.get("index"),
    out_per_class=snakemake.output.per_class,
    out_metrics=snakemake.output.metrics,
    out_confusion=snakemake.output.confusion,
    classes=snakemake.params.classes,
    ignore_codes=snakemake.params.ignore_codes,
    areas=snakemake.params.areas,
    holdout=snakemake.params.holdout,
    kl_patch=snakemake.params.evaluate["kl_patch"],
    kl_eps=snakemake.params.evaluate["kl_eps"],
    experiment=snakemake.wildcards.experiment,
    device=snakemake.wildcards.device,
)
