from landcover.report.bench import summarise_engines
from landcover.runtime import configure_logging

configure_logging(snakemake.log[0])
summarise_engines(tables=snakemake.input.tables, out=snakemake.output.table)
