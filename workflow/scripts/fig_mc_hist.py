"""Monte Carlo accuracy histograms per method with a normal fit."""

import pandas as pd

from igkd.analysis.conditions import check_conditions
from igkd.plots.mc_hist import fig_mc_hist, main_student
from igkd.runtime import log_to

log = log_to(snakemake.log[0])
p = snakemake.params
runs = pd.read_csv(snakemake.input.runs)
student = main_student(runs, p.student)
shown = runs[(runs["student"] == student) & runs["method"].isin(p.methods)]
check_conditions(shown, ("method", "student"), snakemake.input.runs, p.allow_mixed_conditions, log)
log(f"drawing {student}")
fig_mc_hist(runs, p.methods, student, p.bins, snakemake.output.pdf, snakemake.output.png)
