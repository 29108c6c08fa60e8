"""All student metrics -> runs.csv and summary.csv."""

from igkd.collect import runs_table, summary_table
from igkd.io import read_json, write_csv
from igkd.runtime import log_to

log = log_to(snakemake.log[0])
teacher = read_json(snakemake.input.teacher)
runs = runs_table(snakemake.input.metrics, teacher["test_acc"])
write_csv(snakemake.output.runs, runs)
summary = summary_table(runs, snakemake.params.methods)
write_csv(snakemake.output.summary, summary)
log(summary.to_string(index=False))
