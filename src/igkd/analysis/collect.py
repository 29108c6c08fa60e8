"""Student metrics.json files -> one runs table and the mean accuracy per method and factor
(tables/method_means.csv; the statistics with intervals are igkd.analysis.stats' stats/summary.csv)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from igkd.io import InputError, read_json

RUN_COLUMNS = [
    "method",
    "control",
    "drop",
    "factor",
    "paper_factor",
    "run",
    "seed",
    "fraction",
    "n_train",
    "subsample_sha",
    "test_acc",
    "val_acc",
    "params",
    "epochs",
]


def runs_table(metric_paths: Iterable[str], teacher_acc: float) -> pd.DataFrame:
    """One row per run, with accuracy relative to the teacher; sorted for stable output."""
    rows = []
    for path in metric_paths:
        metrics = read_json(path)
        missing = [c for c in RUN_COLUMNS if c not in metrics]
        if missing:
            raise InputError(f"{path}: missing keys {missing}")
        rows.append({c: metrics[c] for c in RUN_COLUMNS})
    frame = pd.DataFrame(rows, columns=RUN_COLUMNS)
    frame["rel_acc"] = frame["test_acc"] / teacher_acc
    return frame.sort_values(["drop", "method", "run"], kind="stable").reset_index(drop=True)


def method_means(runs: pd.DataFrame, method_order: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean, sd and n of test accuracy per method and compression factor."""
    grouped = runs.groupby(["method", "drop", "factor"], sort=False)["test_acc"]
    out = grouped.agg(mean="mean", sd="std", n="count").reset_index()
    order = {m: i for i, m in enumerate(method_order or sorted(out["method"].unique()))}
    out["_rank"] = out["method"].map(lambda m: order.get(m, len(order)))
    return out.sort_values(["factor", "_rank", "method"]).drop(columns="_rank").reset_index(drop=True)
