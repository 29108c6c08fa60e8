"""Student metrics.json files -> one runs table and the mean accuracy per method and factor
(tables/method_means.csv; the statistics with intervals are igkd.analysis.stats' stats/summary.csv).

Each row records the conditions the run trained under (device type, precision, threads:
igkd.analysis.conditions), so a table never hides that it holds CPU float32 and GPU bf16
runs; the mean table keeps such runs in separate rows."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from igkd.analysis.conditions import COLUMNS as CONDITION_COLUMNS
from igkd.analysis.conditions import POOLED, run_conditions
from igkd.analysis.students import student_ranks
from igkd.io import InputError, read_json

RUN_COLUMNS = [
    "method",
    "control",
    "student",
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
    """One row per run, with the conditions it trained under (device type, precision,
    threads) and accuracy relative to the teacher; sorted for stable output (no clock time:
    reruns on one machine write the same bytes)."""
    rows = []
    for path in metric_paths:
        metrics = read_json(path)
        missing = [c for c in RUN_COLUMNS if c not in metrics]
        if missing:
            raise InputError(f"{path}: missing keys {missing}")
        rows.append({**{c: metrics[c] for c in RUN_COLUMNS}, **run_conditions(metrics, path)})
    frame = pd.DataFrame(rows, columns=[*RUN_COLUMNS, *CONDITION_COLUMNS])
    frame["rel_acc"] = frame["test_acc"] / teacher_acc
    return _by_student(frame)


def _by_student(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted by student (igkd.analysis.students order), method and run."""
    ranks = student_ranks(frame["student"])

    def key(col: pd.Series) -> pd.Series:
        return col.map(ranks) if col.name == "student" else col

    return frame.sort_values(["student", "method", "run"], key=key, kind="stable").reset_index(drop=True)


COST_COLUMNS = ["method", "student", "run", "seconds", "device"]


def run_device(metrics: dict) -> str:
    """Where a run trained: its devices (a resumed run may have moved), threads on a CPU."""
    env = metrics.get("environment") or {}
    devices = env.get("devices_used") or ([env["device"]] if env.get("device") else [])
    label = " + ".join(str(d) for d in devices)
    if label == "cpu" and env.get("threads"):
        label = f"cpu ({env['threads']} threads)"
    return label


def run_costs(runtime_paths: Iterable[str]) -> pd.DataFrame:
    """One row per run: its wall-clock seconds (runtime.json) and device (the metrics.json
    beside it). Kept out of runs.csv, which stays byte-reproducible across reruns."""
    rows = []
    for path in runtime_paths:
        seconds = read_json(path).get("seconds")
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or not seconds >= 0:
            raise InputError(f"{path}: key 'seconds' must be a non-negative number of seconds, got {seconds!r}")
        metrics_path = Path(path).with_name("metrics.json")
        metrics = read_json(metrics_path)
        missing = [c for c in ("method", "student", "run") if c not in metrics]
        if missing:
            raise InputError(f"{metrics_path}: missing keys {missing}")
        rows.append(
            {
                **{c: metrics[c] for c in ("method", "student", "run")},
                "seconds": float(seconds),
                "device": run_device(metrics),
            }
        )
    return _by_student(pd.DataFrame(rows, columns=COST_COLUMNS))


def method_means(runs: pd.DataFrame, method_order: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean, sd and n of test accuracy per method and student (sorted by compression factor), and per device
    type and precision: runs trained under different ones are never averaged together."""
    grouped = runs.groupby(["method", "student", "factor", *POOLED], sort=False)["test_acc"]
    out = grouped.agg(mean="mean", sd="std", n="count").reset_index()
    order = {m: i for i, m in enumerate(method_order or sorted(out["method"].unique()))}
    out["_rank"] = out["method"].map(lambda m: order.get(m, len(order)))
    out["_student"] = out["student"].map(student_ranks(out["student"]))
    keys = ["factor", "_student", "_rank", "method", *POOLED]
    return out.sort_values(keys, kind="stable").drop(columns=["_rank", "_student"]).reset_index(drop=True)
