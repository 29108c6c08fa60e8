"""Per-image IG completeness error at fixed steps vs after refinement, and the points used."""

from igkd.plots.ig_convergence import fig_ig_convergence, read_convergence
from igkd.runtime import log_to

log_to(snakemake.log[0])
fig_ig_convergence(read_convergence(snakemake.input.ig), snakemake.output.pdf, snakemake.output.png)
