"""How many runs settle a comparison: the difference the runs at hand could detect, the
runs needed to detect a given one, and the compute those runs cost.

Every comparison `igkd.analysis.stats.compare` (or the controls' family) makes gets one
row. Power is the two-sided t-test's, as statsmodels' `TTestIndPower` (independent runs)
and `TTestPower` (per-pair differences, where the runs are paired as in the tests
themselves) define it, evaluated with scipy's noncentral t; this module only chooses
its inputs:

* sd: the pooled sd of the two groups (independent runs), or the sd of the per-pair
  differences (paired runs: same seed and subsample), i.e. the noise the test sees;
* alpha: two-sided, at plain ``alpha`` and at Holm's strictest step over the family,
  alpha / m, with m the comparisons in the family. A comparison that has to survive Holm
  at any rank is planned at alpha / m, so the runs it needs are an upper bound;
* cost: the median wall time of one run of each group (its runtime.json), times the
  runs per group, on the device those runs used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as st
from scipy.optimize import brentq

from igkd.analysis.markdown import to_markdown
from igkd.analysis.pairing import aligned_samples
from igkd.io import InputError, write_csv

MIN_RUNS = 2  # a t-test needs two runs per group (two pairs when paired)
SEARCH_LIMIT = 10**9  # runs; beyond this a difference counts as out of reach
POWER_COLUMNS = [
    "family",
    "method",
    "baseline",
    "drop",
    "factor",
    "test",
    "n_method",
    "n_baseline",
    "diff",
    "sd",
    "family_size",
    "alpha",
    "alpha_holm",
    "power",
    "detectable_diff_holm",
    "detectable_diff_alpha",
    "power_observed",
    "runs_needed_observed",
    "target_diff",
    "runs_needed_target",
    "seconds_method",
    "seconds_baseline",
    "device",
    "hours_observed",
    "hours_target",
    "hours_unit",
    "note",
]
RUN_COLUMNS = ["runs_needed_observed", "runs_needed_target"]


@dataclass(frozen=True)
class PowerPlan:
    """What a comparison should detect (config `stats`): `target_diff` in the value's units
    (percentage points of accuracy) with probability `power`, two-sided at `alpha`."""

    target_diff: float = 0.5
    power: float = 0.8
    alpha: float = 0.05

    def __post_init__(self):
        if not self.target_diff > 0:
            raise InputError(f"stats.power.target_diff: expected a positive difference, got {self.target_diff}")
        if not 0 < self.power < 1:
            raise InputError(f"stats.power.power: expected a probability in (0, 1), got {self.power}")
        if not 0 < self.alpha < 1:
            raise InputError(f"stats.alpha: expected a level in (0, 1), got {self.alpha}")

    @classmethod
    def from_config(cls, stats: dict) -> PowerPlan:
        return cls(target_diff=stats["power"]["target_diff"], power=stats["power"]["power"], alpha=stats["alpha"])

    def holm_alpha(self, family_size: int) -> float:
        """Holm's first (strictest) step: alpha / m."""
        return self.alpha / max(int(family_size), 1)


def _df_and_scale(n_method: int, n_baseline: int, paired: bool) -> tuple[int, float]:
    """Degrees of freedom and sqrt of the effective n: the noncentrality is effect * scale."""
    if paired:
        return n_method - 1, math.sqrt(n_method)
    return n_method + n_baseline - 2, math.sqrt(n_method * n_baseline / (n_method + n_baseline))


def achieved_power(effect: float, n_method: int, n_baseline: int, alpha: float, paired: bool = False) -> float:
    """Probability that the two-sided t-test at `alpha` rejects when the true effect is
    `effect` sd: P(T > c) + P(T < -c) for T noncentral t, c the t quantile at 1 - alpha/2.

    The definition statsmodels' TTestIndPower / TTestPower use (tests compare the two);
    evaluated with scipy's noncentral t because statsmodels 0.15 returns NaN for large
    noncentralities (effect 20 sd at 2 runs), exactly where few runs suffice."""
    df, scale = _df_and_scale(n_method, n_baseline, paired)
    crit = st.t.isf(alpha / 2, df)
    nc = abs(effect) * scale
    # P(T < -c) for noncentrality nc is P(T > c) for -nc: scipy's cdf underflows to NaN
    # there for large nc, its sf does not.
    return float(st.nct.sf(crit, df, nc) + st.nct.sf(crit, df, -nc))


def detectable_effect(n_method: int, n_baseline: int, alpha: float, power: float, paired: bool = False) -> float:
    """Smallest standardized effect (diff / sd) these runs detect with `power` at `alpha`."""

    def gap(effect: float) -> float:
        return achieved_power(effect, n_method, n_baseline, alpha, paired) - power

    hi = 1.0
    while gap(hi) < 0:
        hi *= 2
    return float(brentq(gap, 0.0, hi, xtol=1e-10))


def runs_needed(effect: float, alpha: float, power: float, paired: bool = False) -> float:
    """Runs per group (pairs when paired) for a two-sided test at `alpha` to detect `effect`
    sd with `power`: the smallest integer n >= 2 (power rises with n), inf for a zero
    effect or beyond SEARCH_LIMIT."""
    effect = abs(float(effect))
    if effect == 0:
        return math.inf

    def enough(n: int) -> bool:
        return achieved_power(effect, n, n, alpha, paired) >= power

    lo, hi = MIN_RUNS - 1, MIN_RUNS  # invariant: not enough(lo) (or lo below the minimum), enough(hi)
    while not enough(hi):
        lo, hi = hi, hi * 2
        if hi > SEARCH_LIMIT:
            return math.inf
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if enough(mid) else (mid, hi)
    return float(hi)


def _noise(x: np.ndarray, y: np.ndarray, paired: bool) -> tuple[float, str]:
    """(sd the test sees, why there is none): sd of the differences, or the pooled sd."""
    if paired:
        if len(x) < MIN_RUNS:
            return math.nan, f"{len(x)} paired run(s): no sd of the differences"
        sd = float(np.std(x - y, ddof=1))
        return sd, "" if sd > 0 else "zero variance of the paired differences: no noise estimate"
    short = [f"n={n} in {name}" for n, name in ((len(x), "method"), (len(y), "baseline")) if n < MIN_RUNS]
    if short:
        return math.nan, ", ".join(short) + ": no sd"
    pooled = ((len(x) - 1) * x.var(ddof=1) + (len(y) - 1) * y.var(ddof=1)) / (len(x) + len(y) - 2)
    sd = math.sqrt(pooled)
    return sd, "" if sd > 0 else "zero variance in both groups: no noise estimate"


def _cost(costs: pd.DataFrame | None, method: str, drop) -> tuple[float, str]:
    """Median seconds of one run of `method` at `drop` and the device(s) those runs used
    (NaN, '' without timed runs)."""
    if costs is None or costs.empty:
        return math.nan, ""
    these = costs[(costs["method"] == method) & (costs["drop"] == drop)]
    seconds = pd.to_numeric(these["seconds"], errors="coerce")
    median = float(seconds.median()) if seconds.notna().any() else math.nan
    return median, " / ".join(sorted(these["device"].dropna().astype(str).unique()))


def hours_unit(device: str) -> str:
    """GPU-hours where the runs used a GPU, else CPU-hours (wall-clock hours of one job)."""
    return "GPU-hours" if any(k in device for k in ("cuda", "mps")) else "CPU-hours"


@dataclass(frozen=True)
class Observed:
    """What one comparison's runs show: group sizes (pairs when paired), the mean
    difference and the noise sd the test sees (NaN where there is none)."""

    n_method: int
    n_baseline: int
    diff: float
    sd: float
    paired: bool = False


def plan_comparison(obs: Observed, plan: PowerPlan, family_size: int, note: str = "") -> dict:
    """One comparison's power columns; `note` (why there is no sd) leaves them empty."""
    alpha_holm = plan.holm_alpha(family_size)
    row = dict(
        test="paired" if obs.paired else "welch",
        n_method=obs.n_method,
        n_baseline=obs.n_baseline,
        diff=obs.diff,
        sd=obs.sd,
        family_size=int(family_size),
        alpha=plan.alpha,
        alpha_holm=alpha_holm,
        power=plan.power,
        detectable_diff_holm=math.nan,
        detectable_diff_alpha=math.nan,
        power_observed=math.nan,
        runs_needed_observed=math.nan,
        target_diff=plan.target_diff,
        runs_needed_target=math.nan,
        note=note,
    )
    if note:
        return row
    sizes, sd, paired = (obs.n_method, obs.n_baseline), obs.sd, obs.paired
    row["detectable_diff_holm"] = sd * detectable_effect(*sizes, alpha_holm, plan.power, paired)
    row["detectable_diff_alpha"] = sd * detectable_effect(*sizes, plan.alpha, plan.power, paired)
    row["power_observed"] = achieved_power(obs.diff / sd, *sizes, alpha_holm, paired)
    row["runs_needed_observed"] = runs_needed(obs.diff / sd, alpha_holm, plan.power, paired)
    row["runs_needed_target"] = runs_needed(plan.target_diff / sd, alpha_holm, plan.power, paired)
    if obs.diff == 0:
        row["note"] = "no observed difference: no number of runs detects it"
    elif not math.isfinite(row["runs_needed_observed"]):
        row["note"] = f"observed difference too small: more than {SEARCH_LIMIT:.0e} runs per group"
    return row


def comparison_power(x: np.ndarray, y: np.ndarray, paired: bool, plan: PowerPlan, family_size: int) -> dict:
    """One comparison's power columns from the method's runs `x` and the baseline's `y`."""
    diff = float(x.mean() - y.mean()) if len(x) and len(y) else math.nan
    sd, note = _noise(x, y, paired)
    return plan_comparison(Observed(len(x), len(y), diff, sd, paired), plan, family_size, note)


@dataclass(frozen=True)
class Family:
    """One family of comparisons (Holm's unit): its name, its comparisons (rows of
    `compare` or the controls'), the runs they test and those runs' costs (run_costs)."""

    name: str
    comparisons: pd.DataFrame
    runs: pd.DataFrame
    costs: pd.DataFrame | None = None


def power_table(
    family: Family, plan: PowerPlan, value: str = "test_acc", by: Sequence[str] = ("drop", "factor")
) -> pd.DataFrame:
    """A power row for each comparison of `family` (method, baseline and `by`).

    The family's size m sets Holm's strictest alpha. Runs are paired exactly where
    `compare` pairs them (`igkd.analysis.stats.aligned_samples`)."""
    comparisons, runs, costs, name = family.comparisons, family.runs, family.costs, family.name
    by = list(by)
    for column in ("method", "baseline", *by):
        if column not in comparisons.columns:
            raise InputError(f"{name} comparisons: missing column {column!r}")
    for column in ("method", value, *by):
        if column not in runs.columns:
            raise InputError(f"{name} runs table: missing column {column!r}")
    rows = []
    for comp in comparisons.to_dict("records"):
        here = np.logical_and.reduce([runs[k] == comp[k] for k in by]) if by else np.ones(len(runs), bool)
        a = runs[here & (runs["method"] == comp["method"])]
        b = runs[here & (runs["method"] == comp["baseline"])]
        x, y, paired = aligned_samples(a, b, value)
        row = {"family": name, **{k: comp[k] for k in ("method", "baseline", *by)}}
        row.update(comparison_power(x, y, paired, plan, len(comparisons)))
        sec_m, dev_m = _cost(costs, comp["method"], comp.get("drop"))
        sec_b, dev_b = _cost(costs, comp["baseline"], comp.get("drop"))
        device = " / ".join(dict.fromkeys(d for d in (dev_m, dev_b) if d))
        per_run = sec_m + sec_b
        row.update(
            seconds_method=sec_m,
            seconds_baseline=sec_b,
            device=device,
            hours_observed=row["runs_needed_observed"] * per_run / 3600,
            hours_target=row["runs_needed_target"] * per_run / 3600,
            hours_unit=hours_unit(device),
        )
        if not math.isfinite(per_run) and not row["note"]:
            row["note"] = "no runtime.json wall time: hours unknown"
        rows.append(row)
    out = pd.DataFrame(rows, columns=POWER_COLUMNS)
    for column in RUN_COLUMNS:  # whole runs; inf (zero difference) -> empty cell, said in note
        numbers = out[column].astype(float)
        out[column] = numbers.where(np.isfinite(numbers)).round().astype("Int64")
    for column in ("hours_observed", "hours_target"):
        numbers = out[column].astype(float)
        out[column] = numbers.where(np.isfinite(numbers))
    return out


def runs_needed_curve(sd: float, diffs: Sequence[float], alpha: float, power: float, paired: bool) -> np.ndarray:
    """Runs per group needed for each difference in `diffs` at noise `sd` (fig_power)."""
    return np.array([runs_needed(d / sd, alpha, power, paired) for d in diffs], dtype=float)


SECTION_COLUMNS = {
    "method": "method",
    "baseline": "baseline",
    "drop": "drop",
    "test": "test",
    "n": "n",
    "diff": "diff",
    "sd": "sd",
    "detectable_diff_holm": "detectable (α/m)",
    "detectable_diff_alpha": "detectable (α)",
    "power_observed": "power",
    "runs_needed_observed": "runs (observed)",
    "runs_needed_target": "runs (target)",
    "hours_target": "hours (target)",
    "note": "note",
}


def power_section(table: pd.DataFrame, plan: PowerPlan, heading: str = "## Power and cost") -> str:
    """The Markdown section stats.md and controls.md carry: what these runs can detect and
    what settling each comparison would take (the full table is stats/power.csv)."""
    if table.empty:
        return f"{heading}\n\n_No comparisons: nothing to plan._\n"
    m = int(table["family_size"].iloc[0])
    devices = ", ".join(d for d in table["device"].dropna().unique() if d) or "unknown (no runtime.json)"
    units = ", ".join(dict.fromkeys(table["hours_unit"]))
    shown = table.assign(n=[f"{a}/{b}" for a, b in zip(table["n_method"], table["n_baseline"])])
    shown = shown[list(SECTION_COLUMNS)].rename(columns=SECTION_COLUMNS)
    return "\n".join(
        [
            heading,
            "",
            f"How many runs settle each comparison, at {100 * plan.power:g} % power, two-sided. "
            "sd is the noise the test sees: the pooled sd (welch rows) or the sd of the per-pair "
            "differences (paired rows: same seed and subsample). detectable: the smallest true "
            f"difference these runs find, at Holm's strictest step α/m = {plan.alpha:g}/{m} = "
            f"{plan.holm_alpha(m):.3g} and at α = {plan.alpha:g}. power: the chance these runs had "
            "to detect a true difference as large as the observed one, at α/m. runs: per group (pairs "
            f"when paired), at α/m, to detect the observed difference and the target {plan.target_diff:g}. "
            "hours: those runs times the median wall time of one method run plus one baseline run, "
            f"measured on {devices} ({units}); a shared baseline is counted in every comparison. "
            "An empty cell is explained in `note`.",
            "",
            to_markdown(shown, formats={"power": "{:.2f}", "hours (target)": "{:.2f}"}),
            "",
        ]
    )


def write_power(families: Sequence[Family], plan: PowerPlan, path) -> pd.DataFrame:
    """stats/power.csv: every family's power rows, one table (written atomically)."""
    tables = [power_table(f, plan) for f in families]
    out = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=POWER_COLUMNS)
    write_csv(path, out)
    return out
