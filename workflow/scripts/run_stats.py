"""runs.csv -> summary with CIs, Welch/Holm comparisons, Lilliefors normality, power and cost."""

from pathlib import Path

import pandas as pd

from igkd.analysis.collect import run_costs
from igkd.analysis.conditions import check_conditions
from igkd.analysis.power import PowerPlan
from igkd.analysis.stats import write_stats
from igkd.runtime import log_to

log = log_to(snakemake.log[0])
runs = pd.read_csv(snakemake.input.runs)
stats = snakemake.params.stats
check_conditions(runs, ("method", "student"), snakemake.input.runs, stats["allow_mixed_conditions"], log)
paths = write_stats(
    runs,
    Path(snakemake.output.summary).parent,
    method_order=snakemake.params.methods,
    plan=PowerPlan.from_config(stats),
    costs=run_costs(snakemake.input.runtime),
)
log(Path(paths["markdown"]).read_text())
