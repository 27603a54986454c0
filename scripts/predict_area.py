from landcover.mapping.scene import predict_area
from landcover.runtime import configure_logging

configure_logging(snakemake.log[0])
predict_area(
    model=snakemake.input.model,
    image=snakemake.input.image,
    out=snakemake.output.map,
    confidence=snakemake.output.get("confidence"),
    probabilities=snakemake.output.get("probabilities"),
    kind=snakemake.params.kind,
    classes=snakemake.params.classes,
    ignore_codes=snakemake.params.ignore_codes,
    experiment=snakemake.wildcards.experiment,
    device=snakemake.wildcards.device,
    settings=snakemake.params.predict,
    threads=snakemake.threads,
    onnx=snakemake.input.get("onnx") or None,
)
