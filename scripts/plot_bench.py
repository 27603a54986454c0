from landcover.report.bench import plot_cpu_scaling, plot_device_ladder
from landcover.runtime import configure_logging

configure_logging(snakemake.log[0])
plot_device_ladder(devices=snakemake.input.devices, out=snakemake.output.ladder)
plot_cpu_scaling(devices=snakemake.input.devices, out=snakemake.output.scaling)
