from landcover.models.segmentation.export import export_model
from landcover.runtime import configure_logging

configure_logging(snakemake.log[0])
export_model(
    snakemake.input.model,
    snakemake.output.onnx,
    snakemake.output.item,
    snakemake.params.classes,
    item_id=f"landcover-{snakemake.wildcards.experiment}-{snakemake.wildcards.device}",
    licence=snakemake.params.licence,
)
