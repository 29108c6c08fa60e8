"""Sweep metrics.json files -> one table (one row per grid point and run) and its best point."""

from igkd.analysis.conditions import check_conditions
from igkd.analysis.sweeps import best_point, point_columns, sweep_summary, sweep_table
from igkd.io import write_csv
from igkd.runtime import log_to

log = log_to(snakemake.log[0])
table = sweep_table(snakemake.input.metrics)
# before anything is written: a best point over runs of mixed precisions is no choice
check_conditions(table, point_columns(table), snakemake.output.table, snakemake.params.allow_mixed_conditions, log)
write_csv(snakemake.output.table, table)
log(sweep_summary(table).to_string(index=False))
log(f"best on the validation split: {best_point(table)}")
