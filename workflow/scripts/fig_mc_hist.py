"""Monte Carlo accuracy histograms per method with a normal fit."""

import pandas as pd

from igkd.analysis.conditions import check_conditions
from igkd.plots.mc_hist import fig_mc_hist, main_drop
from igkd.runtime import log_to

log = log_to(snakemake.log[0])
p = snakemake.params
runs = pd.read_csv(snakemake.input.runs)
drop = main_drop(runs, p.drop)
shown = runs[(runs["drop"] == drop) & runs["method"].isin(p.methods)]
check_conditions(shown, ("method", "drop"), snakemake.input.runs, p.allow_mixed_conditions, log)
log(f"drawing drop {drop}")
fig_mc_hist(runs, p.methods, drop, p.bins, snakemake.output.pdf, snakemake.output.png)
