"""stats/power.csv -> runs needed against the difference to detect (fig_power)."""

import pandas as pd

from igkd.plots.mc_hist import main_drop
from igkd.plots.power import fig_power
from igkd.runtime import log_to

log = log_to(snakemake.log[0])
p = snakemake.params
drop = main_drop(pd.read_csv(snakemake.input.runs), p.drop, key="figures.power.drop")
log(f"drawing drop {drop}")
fig_power(pd.read_csv(snakemake.input.power), drop, p.max_diff, snakemake.output.pdf, snakemake.output.png)
