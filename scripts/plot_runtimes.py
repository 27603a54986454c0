from landcover.report.bench import plot_runtimes
from landcover.runtime import configure_logging

configure_logging(snakemake.log[0])
plot_runtimes(runtimes=snakemake.input.table, out=snakemake.output.png)
