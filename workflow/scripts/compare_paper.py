"""igkd against the paper's published numbers -> comparison.csv, claims.csv, comparison.md and
the figure; or, where the run cannot be compared with the paper, the one line saying why."""

from pathlib import Path

import pandas as pd

from igkd.analysis.paper_numbers import COMPARABLE, load_numbers
from igkd.analysis.replication import (
    IgkdResults,
    ReplicationSettings,
    pool_runs,
    replicate,
)
from igkd.analysis.replication_report import ReportPaths, write_not_comparable, write_report
from igkd.io import read_json
from igkd.plots.paper_comparison import fig_not_comparable, fig_paper_comparison
from igkd.runtime import log_to

log = log_to(snakemake.log[0])
out = snakemake.output
paths = ReportPaths(out.comparison, out.claims, out.markdown)
if snakemake.params.comparable != COMPARABLE:
    write_not_comparable(snakemake.params.comparable, paths)
    fig_not_comparable(snakemake.params.comparable, out.pdf, out.png)
else:
    settings = ReplicationSettings.from_config(snakemake.params.replication)
    external = None
    if snakemake.input.get("external"):
        table = pd.read_csv(snakemake.input.external)
        external = float(table.loc[table["model"] == "teacher", "accuracy"].iloc[0])
    results = IgkdResults(
        pool_runs(pd.read_csv(path) for path in snakemake.input.runs),
        read_json(snakemake.input.teacher_metrics)["test_acc"],
        external,
    )
    report = replicate(load_numbers(), results, settings)  # the installed numbers (params.numbers: their checksum)
    write_report(report, paths)
    level = f"{100 * (1 - settings.alpha):g} %"
    fig_paper_comparison(report.rows, settings.margin, level, out.pdf, out.png)
log(Path(out.markdown).read_text())
