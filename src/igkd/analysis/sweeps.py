"""Hyper-parameter sweeps scored on the validation split: grids, point names, tables.

Each grid point trains the sweep's method with one setting changed, on the training rows
outside `data.h5`'s validation split, and is scored on that split only (the reference
code chose alpha and T on the test set). Torch-free: the workflow builds its job list
from these functions on every dry run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

from igkd.analysis.conditions import COLUMNS as CONDITION_COLUMNS
from igkd.analysis.conditions import run_conditions
from igkd.io import InputError, read_json

# sweep name -> the students-config keys it varies (as (section, key) paths) and the
# grid lists in the `sweeps` config section that give their values.
SWEEP_KEYS: dict[str, dict[str, tuple[str, ...]]] = {
    "kd": {"alpha": ("kd", "alpha"), "temperature": ("kd", "temperature")},
    "overlay_p": {"p": ("ig", "p")},
}
GRID_LISTS = {"kd": {"alpha": "alphas", "temperature": "temperatures"}, "overlay_p": {"p": "ps"}}
SECTION = {"kd": "kd", "overlay_p": "overlay"}
PREFIX = {"alpha": "alpha", "temperature": "T", "p": "p"}
TABLE_COLUMNS = ["sweep", "method", "student", "run", "seed", "n_train", "n_val", "epochs", "val_acc"]


def fmt(value: float) -> str:
    """Shortest stable text of a grid value for paths: 0.0005 -> '0.0005', 2.0 -> '2'."""
    return f"{float(value):g}"


def point_name(sweep: str, values: Mapping[str, float]) -> str:
    """Folder name of a grid point, e.g. 'alpha0.01_T2.5' or 'p0.1'."""
    return "_".join(f"{PREFIX[key]}{fmt(values[key])}" for key in SWEEP_KEYS[sweep])


def grid(sweeps_cfg: Mapping, sweep: str) -> list[dict]:
    """The sweep's grid points in config order (first key slowest), without runs."""
    if sweep not in SWEEP_KEYS:
        raise InputError(f"unknown sweep {sweep!r}; expected one of {sorted(SWEEP_KEYS)}")
    section = sweeps_cfg[SECTION[sweep]]
    points: list[dict] = [{}]
    for key, list_name in GRID_LISTS[sweep].items():
        points = [{**p, key: float(v)} for p in points for v in section[list_name]]
    return points


def grid_points(sweeps_cfg: Mapping, sweep: str) -> dict[str, dict]:
    """{point name: values} of the configured grid; names are unique by construction."""
    points = {point_name(sweep, p): p for p in grid(sweeps_cfg, sweep)}
    if len(points) != len(grid(sweeps_cfg, sweep)):
        raise InputError(f"sweeps.{SECTION[sweep]}: grid values repeat after formatting ({sorted(points)})")
    return points


def lookup_point(sweeps_cfg: Mapping, sweep: str, name: str) -> dict:
    """Values of the grid point called `name`; an error names the configured points."""
    points = grid_points(sweeps_cfg, sweep)
    if name not in points:
        raise InputError(f"sweep {sweep!r}: point {name!r} is not in the configured grid {sorted(points)}")
    return points[name]


def sweep_table(metric_paths: Iterable[str]) -> pd.DataFrame:
    """One row per (grid point, run) from the points' metrics.json files, with the conditions
    each trained under (device type, precision, threads: igkd.analysis.conditions)."""
    rows = []
    for path in metric_paths:
        metrics = read_json(path)
        sweep = metrics.get("sweep")
        if sweep not in SWEEP_KEYS:
            raise InputError(f"{path}: 'sweep' is {sweep!r}; expected one of {sorted(SWEEP_KEYS)}")
        needed = [*TABLE_COLUMNS, *SWEEP_KEYS[sweep]]
        missing = [c for c in needed if c not in metrics]
        if missing:
            raise InputError(f"{path}: missing keys {missing}")
        if metrics["val_acc"] is None:
            raise InputError(f"{path}: val_acc is null; sweeps need a validation split (dataset.val_fraction > 0)")
        rows.append({**{c: metrics[c] for c in needed}, **run_conditions(metrics, path)})
    if not rows:
        raise InputError("sweep table: no metrics files given")
    sweeps = {r["sweep"] for r in rows}
    if len(sweeps) != 1:
        raise InputError(f"sweep table: metrics of several sweeps mixed: {sorted(sweeps)}")
    keys = list(SWEEP_KEYS[sweeps.pop()])
    frame = pd.DataFrame(rows, columns=[*TABLE_COLUMNS[:3], *keys, *TABLE_COLUMNS[3:], *CONDITION_COLUMNS])
    return frame.sort_values([*keys, "run"], kind="stable").reset_index(drop=True)


def sweep_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean, sd (ddof=1) and n of validation accuracy per grid point."""
    keys = point_columns(table)
    out = table.groupby(keys, sort=True)["val_acc"].agg(mean="mean", sd=lambda x: x.std(ddof=1), n="count")
    return out.reset_index()


def best_point(table: pd.DataFrame) -> dict:
    """The grid point with the highest mean validation accuracy (the smallest values on ties)."""
    summary = sweep_summary(table)
    row = summary.loc[summary["mean"].idxmax()]
    return {**{k: float(row[k]) for k in point_columns(table)}, "val_acc": float(row["mean"]), "n": int(row["n"])}


def point_columns(table: pd.DataFrame) -> list[str]:
    """The swept columns of a one-sweep table (alpha, temperature or p): its grid points."""
    sweeps = table["sweep"].unique() if "sweep" in table else []
    if len(sweeps) != 1 or sweeps[0] not in SWEEP_KEYS:
        raise InputError(
            f"sweep table: expected one sweep of {sorted(SWEEP_KEYS)} in column 'sweep', got {list(sweeps)}"
        )
    keys = list(SWEEP_KEYS[sweeps[0]])
    missing = [k for k in [*keys, "val_acc"] if k not in table]
    if missing:
        raise InputError(f"sweep table: missing column(s) {missing}")
    return keys
