"""All student metrics -> tables/runs.csv and tables/method_means.csv."""

from igkd.analysis.collect import method_means, runs_table
from igkd.io import read_json, write_csv
from igkd.runtime import log_to

log = log_to(snakemake.log[0])
teacher = read_json(snakemake.input.teacher_metrics)
runs = runs_table(snakemake.input.metrics, teacher["test_acc"])
write_csv(snakemake.output.runs, runs)
means = method_means(runs, snakemake.params.methods)
write_csv(snakemake.output.method_means, means)
log(means.to_string(index=False))
