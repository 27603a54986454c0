"""Write the embedded demo bucket (rule ``make_demo_bucket``)."""

from landcover.runtime import configure_logging
from landcover.sources.demo.bucket import make_demo_bucket

configure_logging(snakemake.log[0])  # logging, warnings and tracebacks into the rule log
make_demo_bucket(
    root=snakemake.output.root,
    areas=snakemake.params.areas,
    dates=snakemake.params.dates,
    n_dates=snakemake.params.n_dates,
    seed=snakemake.params.seed,
)
