"""Test accuracy vs model-only inference latency."""

import pandas as pd

from igkd.analysis.stats import summarize
from igkd.io import read_json
from igkd.plots.latency import fig_latency
from igkd.runtime import log_to

log_to(snakemake.log[0])
runs = pd.read_csv(snakemake.input.runs)
summary = summarize(runs, confidence=1 - snakemake.params.alpha, method_order=snakemake.params.methods)
fig_latency(
    summary,
    pd.read_csv(snakemake.input.timing),
    read_json(snakemake.input.teacher_metrics)["test_acc"],
    snakemake.params.methods,
    snakemake.output.pdf,
    snakemake.output.png,
)
