from landcover.report.figures import plot_leaderboard
from landcover.runtime import configure_logging

configure_logging(snakemake.log[0])
plot_leaderboard(leaderboard=snakemake.input.table, out=snakemake.output.png)
