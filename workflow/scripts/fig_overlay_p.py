"""Validation accuracy vs overlay probability p."""

import pandas as pd

from igkd.plots.overlay_p import fig_overlay_p
from igkd.runtime import log_to

log_to(snakemake.log[0])
fig_overlay_p(pd.read_csv(snakemake.input.table), snakemake.output.pdf, snakemake.output.png)
