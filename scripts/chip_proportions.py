from landcover.evaluation.proportions import chip_proportions
from landcover.runtime import configure_logging

configure_logging(snakemake.log[0])
chip_proportions(
    snakemake.input.maps,
    snakemake.input.labels,
    snakemake.params.areas,
    snakemake.output.table,
    classes=snakemake.params.classes,
    ignore_codes=snakemake.params.ignore_codes,
    eps=snakemake.params.eps,
    unlabelled=snakemake.params.unlabelled,
    unlabelled_maps=snakemake.input.unlabelled_maps,
    unlabelled_images=snakemake.input.unlabelled_images,
)
