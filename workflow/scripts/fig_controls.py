"""Controls next to KD_IG, IG, KD and Student: mean test accuracy with its 1 - stats.alpha CI."""

import pandas as pd

from igkd.io import read_json
from igkd.plots.controls import fig_controls
from igkd.runtime import log_to

log_to(snakemake.log[0])
summary = pd.read_csv(snakemake.input.summary)
runs = pd.read_csv(snakemake.input.runs)
levels = pd.read_csv(snakemake.input.levels)
teacher = read_json(snakemake.input.teacher_metrics)
fig_controls(summary, runs, teacher["test_acc"], snakemake.output.pdf, snakemake.output.png, levels)
