from landcover.prepare.weights import class_weights
from landcover.runtime import configure_logging

configure_logging(snakemake.log[0])
class_weights(
    index=snakemake.input.index,
    out=snakemake.output.weights,
    class_names=snakemake.params.class_names,
    method=snakemake.params.method,
    beta=snakemake.params.beta,
    max_weight=snakemake.params.max_weight,
)
