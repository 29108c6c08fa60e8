"""Controls and comparison methods of one student -> runs table, summary, Welch/Holm tests, power, Markdown."""

from pathlib import Path

from igkd.analysis.collect import run_costs, runs_table
from igkd.analysis.conditions import check_conditions
from igkd.analysis.control_stats import write_control_stats
from igkd.analysis.power import PowerPlan
from igkd.io import read_json
from igkd.runtime import log_to

log = log_to(snakemake.log[0])
cfg = snakemake.params.controls
stats = snakemake.params.stats
teacher = read_json(snakemake.input.teacher_metrics)
runs = runs_table(snakemake.input.metrics, teacher["test_acc"])
check_conditions(runs, ("method", "student"), snakemake.output.runs, stats["allow_mixed_conditions"], log)
write_control_stats(
    runs,
    dict(snakemake.output.items()),
    controls=cfg["methods"],
    compare_with=cfg["compare_with"],
    student=cfg["student"],
    plan=PowerPlan.from_config(stats),
    costs=run_costs(snakemake.input.runtime),
)
log(Path(snakemake.output.markdown).read_text())
