"""stats/power.csv -> runs needed against the difference to detect (fig_power)."""

import pandas as pd

from igkd.plots.mc_hist import main_drop
from igkd.plots.power import fig_power
from igkd.runtime import log_to

log = log_to(snakemake.log[0])
p = snakemake.params
runs = pd.concat([pd.read_csv(path) for path in snakemake.input.runs]) if p.family else None
drop = main_drop(runs, p.drop, key="figures.power.drop") if p.family else None
log(f"drawing {p.family} at drop {drop}" if p.family else "no experiment with tests: the controls only")
fig_power(pd.read_csv(snakemake.input.power), p.family, drop, p.max_diff, snakemake.output.pdf, snakemake.output.png)
