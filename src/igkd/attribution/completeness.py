"""IG's completeness error, one definition for the precompute stage, its log and the benchmarks.

Completeness says sum(attr) = f_t(x) - f_t(0) (the target logit's gain over the zero
baseline). The absolute error |sum(attr) - gain| is in logits. Dividing it by |gain| alone
lets the few images whose logit barely moves (|gain| near 0) decide the mean (a 0.01-logit
error over a 1e-4 gain is "100"), so the relative error divides by max(|gain|, floor): the
usual ratio where the gain is at least `floor` logits, the absolute error in units of
`floor` below it. The distribution is reported by robust statistics (median, p90, p99,
fraction within a tolerance) beside the mean and max.
"""

from __future__ import annotations

import numpy as np

from igkd.io import InputError

DEFAULT_REL_FLOOR = 1.0  # logits; the schema default of precompute.ig.rel_floor
DEFAULT_TOLERANCE = 0.05  # the schema default of precompute.ig.report_tolerance
DEFINITION = (
    "abs_delta = |sum(attr) - (f_t(x) - f_t(0))| (logits); "
    "rel_delta = abs_delta / max(|f_t(x) - f_t(0)|, rel_floor); "
    "abs_delta_within counts abs_delta <= tolerance * rel_floor"
)
STATISTICS = ("n", "median", "p90", "p99", "max", "mean", "within")


def check_floor(floor: float) -> float:
    floor = float(floor)
    if not floor > 0:  # also rejects NaN
        raise InputError(f"precompute.ig.rel_floor: expected a number > 0 (logits), got {floor}")
    return floor


def errors(delta, gain, floor: float = DEFAULT_REL_FLOOR) -> tuple[np.ndarray, np.ndarray]:
    """Absolute and guarded relative completeness error per image.

    `delta` = sum(attr) - gain (signed, NaN for methods without completeness) and `gain` =
    f_t(x) - f_t(0), both (N,). Returns (abs, rel) as float64 arrays."""
    floor = check_floor(floor)
    delta = np.asarray(delta, dtype=np.float64)
    gain = np.asarray(gain, dtype=np.float64)
    absolute = np.abs(delta)
    return absolute, absolute / np.maximum(np.abs(gain), floor)


def distribution(values, tolerance: float) -> dict:
    """n, median, p90, p99, max, mean and the fraction <= tolerance of the finite values
    (NaN rows, e.g. saliency's missing delta, are left out; all NaN when none is finite)."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return {"n": 0, **{k: float("nan") for k in STATISTICS[1:]}}
    p50, p90, p99 = np.percentile(finite, [50, 90, 99])
    return {
        "n": int(finite.size),
        "median": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "max": float(finite.max()),
        "mean": float(finite.mean()),
        "within": float(np.mean(finite <= tolerance)),
    }


def summarize(delta, gain, *, floor: float = DEFAULT_REL_FLOOR, tolerance: float = DEFAULT_TOLERANCE) -> dict:
    """Flat dict (HDF5 attrs): `abs_delta_<stat>`, `rel_delta_<stat>`, the floor, the
    tolerance, the fraction of images whose |gain| was below the floor, the definition."""
    floor = check_floor(floor)
    absolute, relative = errors(delta, gain, floor)
    gain = np.abs(np.asarray(gain, dtype=np.float64))
    counted = np.isfinite(relative)
    out = {f"rel_delta_{k}": v for k, v in distribution(relative, tolerance).items()}
    out.update({f"abs_delta_{k}": v for k, v in distribution(absolute, tolerance * floor).items()})
    out["rel_delta_floor"] = floor
    out["rel_delta_tolerance"] = float(tolerance)
    out["rel_delta_floored"] = float(np.mean(gain[counted] < floor)) if counted.any() else float("nan")
    out["completeness_definition"] = DEFINITION
    return out


def format_summary(summary: dict) -> str:
    """One log line for a `summarize` dict."""
    n = int(summary["rel_delta_n"])
    if n == 0:
        return "completeness error: none (this attribution has no completeness property)"
    r = {k: summary[f"rel_delta_{k}"] for k in STATISTICS}
    a = {k: summary[f"abs_delta_{k}"] for k in STATISTICS}
    floor, tolerance = summary["rel_delta_floor"], summary["rel_delta_tolerance"]
    return (
        f"relative completeness error (|gain| floored at {floor:g} logit; {summary['rel_delta_floored']:.1%} "
        f"of {n} images below it): median {r['median']:.4g}, p90 {r['p90']:.4g}, p99 {r['p99']:.4g}, "
        f"max {r['max']:.4g}, mean {r['mean']:.4g}; {r['within']:.1%} within {tolerance:g}. "
        f"Absolute (logits): median {a['median']:.4g}, p90 {a['p90']:.4g}, p99 {a['p99']:.4g}, "
        f"max {a['max']:.4g}; {a['within']:.1%} within {tolerance * floor:g}"
    )
