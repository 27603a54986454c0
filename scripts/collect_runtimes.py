from landcover.report.bench import collect_runtimes
from landcover.runtime import configure_logging

configure_logging(snakemake.log[0])
collect_runtimes(benchmarks=snakemake.params.benchmarks, out=snakemake.output.table)
