"""Accuracy relative to the teacher, and inference speed-up, vs compression factor."""

import pandas as pd

from igkd.analysis.stats import summarize
from igkd.io import read_json
from igkd.plots.compression import fig_compression
from igkd.runtime import log_to

log_to(snakemake.log[0])
runs = pd.read_csv(snakemake.input.runs)
teacher = read_json(snakemake.input.teacher_metrics)
summary = summarize(runs, confidence=1 - snakemake.params.alpha, method_order=snakemake.params.methods)
fig_compression(
    summary,
    teacher["test_acc"],
    snakemake.params.methods,
    snakemake.output.pdf,
    snakemake.output.png,
    timing=pd.read_csv(snakemake.input.timing),
)
