"""stats/power.csv -> runs needed against the difference to detect (fig_power)."""

import pandas as pd

from igkd.plots.mc_hist import main_student
from igkd.plots.power import fig_power
from igkd.runtime import log_to

log = log_to(snakemake.log[0])
p = snakemake.params
runs = pd.concat([pd.read_csv(path) for path in snakemake.input.runs]) if p.family else None
student = main_student(runs, p.student, key="figures.power.student") if p.family else None
log(f"drawing {p.family} of {student}" if p.family else "no experiment with tests: the controls only")
power = pd.read_csv(snakemake.input.power)
fig_power(power, p.family, student, p.max_diff, snakemake.output.pdf, snakemake.output.png)
