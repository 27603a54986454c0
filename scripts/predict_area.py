from landcover.predict import predict_area
from landcover.runtime import configure_logging

configure_logging(snakemake.log[0])
settings = snakemake.params.predict
predict_area(
    model=snakemake.input.model,
    image=snakemake.input.image,
    out=snakemake.output.map,
    confidence=snakemake.output.get("confidence"),
    classes=snakemake.params.classes,
    ignore_codes=snakemake.params.ignore_codes,
    experiment=snakemake.wildcards.experiment,
    device=snakemake.wildcards.device,
    values=settings["values"],
    window=settings["window"],
    overlap=settings["overlap"],
    batch_size=settings["batch_size"],
    threads=snakemake.threads,
)
