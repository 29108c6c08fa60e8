"""The conditions a run trained under (device type, precision, threads), and the check that
keeps a table from pooling runs of different ones.

A CPU float32 run, a GPU bf16 run and a T4 fp16 run of one seed end with different
weights: not by noise alone but by a systematic difference in rounding (bf16 keeps 8
mantissa bits, float32 23). A mean, a Welch test or a histogram over such runs, or a
comparison of a CPU group with a GPU group, would attribute that difference to the method.
Device types are kept apart too, float32 on both included: CPU and GPU runs use other
kernels (oneDNN, cuDNN's autotuned ones), and a mixed table is usually a sign that
`runtime.device: auto` met different machines, which the table's reader should know.
So every table that pools runs (an experiment's statistics, the controls, a sweep,
fig_mc_hist) refuses a mix of device types or precisions anywhere in it, within one group
(a method and student) or between the groups it compares, with one line naming the
conditions, the groups that have each, and the setting that lets it through
(`stats.allow_mixed_conditions: true`, for a user who has judged the mix harmless).

Thread counts and GPU models are recorded but never refused: they change a result in
the last bits only (the summation order).
Torch-free: the analysis environment reads it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import pandas as pd

from igkd.io import InputError

POOLED = ("device", "precision")  # what may not differ within one table
COLUMNS = (*POOLED, "threads")  # what runs.csv and the sweep tables record of each run
ALLOW_KEY = "stats.allow_mixed_conditions"
NAMED_GROUPS = 4  # groups named per condition in the error line; the rest are counted


def run_conditions(metrics: Mapping, path: str | os.PathLike) -> dict:
    """{device, precision, threads} of one run from its metrics.json `environment`:
    the device type (cpu, cuda, mps), the training precision (fp32, bf16, fp16)."""
    env = metrics.get("environment") or {}
    device = env.get("device_type") or (str(env["device"]).split(":")[0] if env.get("device") else None)
    found = {"device": device, "precision": env.get("precision"), "threads": env.get("threads")}
    missing = [f"environment.{'device_type' if k == 'device' else k}" for k, v in found.items() if v is None]
    if missing:
        raise InputError(f"{path}: missing keys {missing} (written before runs recorded their precision; retrain it)")
    return {**found, "threads": int(found["threads"])}


def mixed_conditions(runs: pd.DataFrame, groups: Sequence[str], source: str) -> str | None:
    """None when every run of `runs` trained under one device type and precision, else one
    line naming each condition and the groups (`groups` columns) that have runs under it."""
    missing = [c for c in (*POOLED, *groups) if c not in runs.columns]
    if missing:
        raise InputError(f"{source}: missing column(s) {missing}; rerun the rule that wrote it")
    conditions = runs.groupby(list(POOLED), sort=True)
    if conditions.ngroups <= 1:
        return None
    parts = []
    for (device, precision), rows in conditions:
        counts = rows.groupby(list(groups), sort=False).size()
        named = [f"{_label(groups, key)}: {n} run{'s' * (n != 1)}" for key, n in counts.items()]
        more = len(named) - NAMED_GROUPS
        named = named[:NAMED_GROUPS] + ([f"{more} more group{'s' * (more != 1)}"] if more > 0 else [])
        parts.append(f"{device} {precision} ({'; '.join(named)})")
    return (
        f"{source}: runs trained under different device types or precisions would be pooled and compared "
        f"as if alike: {', '.join(parts)}; retrain them under one runtime.device type and runtime.precision, "
        f"or set {ALLOW_KEY}: true"
    )


def check_conditions(runs: pd.DataFrame, groups: Sequence[str], source: str, allow: bool, log=None) -> None:
    """Raise an InputError (mixed_conditions' line) when `runs` mix device types or
    precisions, unless `allow`; then the line goes to `log` as a warning."""
    problem = mixed_conditions(runs, groups, source)
    if problem is None:
        return
    if not allow:
        raise InputError(problem)
    if log is not None:
        log(f"warning ({ALLOW_KEY}: true, so pooled anyway): {problem}")


def _label(groups: Sequence[str], key) -> str:
    values = key if isinstance(key, tuple) else (key,)
    return " ".join(f"{name} {value}" for name, value in zip(groups, values))
