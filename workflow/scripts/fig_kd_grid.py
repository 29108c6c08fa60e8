"""Validation accuracy heatmap over the KD sweep's (alpha, T) grid."""

import pandas as pd

from igkd.plots.kd_grid import fig_kd_grid
from igkd.runtime import log_to

log_to(snakemake.log[0])
fig_kd_grid(pd.read_csv(snakemake.input.table), snakemake.output.pdf, snakemake.output.png)
