"""How many runs settle a comparison: the smallest difference the runs at hand can detect,
the runs needed to detect a difference chosen in advance, and the compute those runs cost.

No "observed power". Power at the observed difference is a one-to-one transform of the
p-value: it adds nothing to the test and invites reading a non-significant result as
"underpowered, so probably real". Runs are planned only for `stats.power.target_diff`, a
difference chosen before looking; what the runs at hand can do is the detectable difference.

Power is the two-sided t-test's, as statsmodels' `TTestIndPower` (independent runs) and
`TTestPower` (per-pair differences, where the runs are paired as in the tests themselves)
define it, evaluated with scipy's noncentral t. This module chooses its inputs:

* Family. Holm's family as the tests have it (`igkd.analysis.stats.adjust_family`): the
  comparisons that got a p-value, m of them. Planning is at Holm's strictest step,
  alpha / m: a comparison that has to survive Holm at any rank is planned at alpha / m, so
  the runs it needs are an upper bound. Comparisons without a p-value (one run, zero
  variance) still get a plan, from the family's sd, but are not counted in m.
* sd, pooled over the family, because one comparison's sd from a few runs is too uncertain
  to plan with (2 runs: 1 degree of freedom, and runs needed scale with sd²):
  - welch rows: the within-method variance pooled over every method group (method, student,
    factor) that the family's tested Welch comparisons use, each group counted once:
    s² = Σ (n_i − 1)·s_i² / Σ (n_i − 1), df = Σ (n_i − 1). This assumes one run-to-run sd
    for all methods and students (the Welch test itself does not).
  - paired rows: the variance of the per-pair differences pooled over the family's tested
    paired comparisons: s_d² = Σ (n_k − 1)·s_dk² / Σ (n_k − 1), df = Σ (n_k − 1).
    Comparisons sharing a baseline (KD − Student, IG − Student) share its run-to-run
    noise, so their differences are positively correlated: the pooled variance stays an
    unbiased average, but its terms are not independent, the effective df are fewer than
    Σ (n_k − 1), and the upper bound below is then too low (optimistic).
  The comparison's own sd (`sd_comparison`) is kept as a description, not planned from.
* Upper bound of the sd: (df·s²/σ²) is chi-square with df degrees of freedom, so
  σ <= s·√(df / χ²_{alpha}(df)) with confidence 1 − alpha, one-sided (only too *much*
  noise spoils a plan), at the same 1 − alpha as every interval in the tables. Runs
  needed and hours are given at the point estimate and at this bound: with a 2-run pilot
  (df 1, bound ≈ 16·s at alpha 0.05) the two differ by a factor of up to 16² ≈ 250.
* cost: the median wall time of one run of each group (its runtime.json), times the
  runs per group, on the device those runs used.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
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
    "student",
    "factor",
    "test",
    "n_method",
    "n_baseline",
    "diff",
    "sd_comparison",
    "sd_pooled",
    "sd_df",
    "sd_upper",
    "sd_upper_level",
    "family_size",
    "alpha",
    "alpha_holm",
    "power",
    "detectable_diff_holm",
    "detectable_diff_holm_upper",
    "detectable_diff_alpha",
    "target_diff",
    "runs_needed_target",
    "runs_needed_target_upper",
    "seconds_method",
    "seconds_baseline",
    "device",
    "hours_target",
    "hours_target_upper",
    "hours_unit",
    "note",
]
RUN_COLUMNS = ["runs_needed_target", "runs_needed_target_upper"]
HOUR_COLUMNS = ["hours_target", "hours_target_upper"]


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

    @property
    def confidence(self) -> float:
        """The level of every interval and bound: 1 - alpha."""
        return 1 - self.alpha


def tested(comparisons: pd.DataFrame) -> np.ndarray:
    """Which comparisons are in Holm's family: those that got a p-value."""
    if "p" not in comparisons.columns:
        raise InputError("comparisons: missing column 'p' (the family is the comparisons with a p-value)")
    return comparisons["p"].notna().to_numpy()


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


@dataclass(frozen=True)
class Noise:
    """A noise sd pooled over samples and its degrees of freedom (df 0: no estimate)."""

    sd: float
    df: int

    @classmethod
    def pooled(cls, samples: Iterable[np.ndarray]) -> Noise:
        """Σ (n_i − 1)·s_i² / Σ (n_i − 1) over the samples with two or more values."""
        used = [np.asarray(s, float) for s in samples if len(s) >= MIN_RUNS]
        return cls.from_variances([s.var(ddof=1) for s in used], [len(s) - 1 for s in used])

    @classmethod
    def from_variances(cls, variances: Sequence[float], dfs: Sequence[int]) -> Noise:
        """Pool variances (ddof=1) with these degrees of freedom."""
        df = int(sum(dfs))
        if df < 1:
            return cls(math.nan, 0)
        return cls(math.sqrt(sum(d * v for d, v in zip(dfs, variances)) / df), df)

    def upper(self, confidence: float) -> float:
        """One-sided upper confidence bound of the sd: s·√(df / χ²_{1 − confidence}(df))."""
        if self.df < 1:
            return math.nan
        return self.sd * math.sqrt(self.df / st.chi2.ppf(1 - confidence, self.df))

    def usable(self) -> bool:
        return self.df >= 1 and self.sd > 0


def _comparison_sd(x: np.ndarray, y: np.ndarray, paired: bool) -> float:
    """The comparison's own noise (descriptive): sd of the differences, or the pooled sd."""
    if paired:
        return float(np.std(x - y, ddof=1)) if len(x) >= MIN_RUNS else math.nan
    if min(len(x), len(y)) < MIN_RUNS:
        return math.nan
    return Noise.pooled([x, y]).sd


def plan_comparison(
    n_method: int, n_baseline: int, paired: bool, noise: Noise, plan: PowerPlan, family_size: int
) -> dict:
    """One comparison's plan from the family's `noise` (its sd and df): what these runs
    detect and the runs needed for `plan.target_diff`, at the point estimate of the sd and
    at its one-sided upper bound (level plan.confidence)."""
    alpha_holm = plan.holm_alpha(family_size)
    row = dict(
        test="paired" if paired else "welch",
        n_method=n_method,
        n_baseline=n_baseline,
        sd_pooled=noise.sd,
        sd_df=noise.df,
        sd_upper=noise.upper(plan.confidence),
        sd_upper_level=plan.confidence,
        family_size=int(family_size),
        alpha=plan.alpha,
        alpha_holm=alpha_holm,
        power=plan.power,
        detectable_diff_holm=math.nan,
        detectable_diff_holm_upper=math.nan,
        detectable_diff_alpha=math.nan,
        target_diff=plan.target_diff,
        runs_needed_target=math.nan,
        runs_needed_target_upper=math.nan,
        note="",
    )
    kind = "per-pair differences" if paired else "within-method runs"
    if not noise.df:
        row["note"] = f"no tested {row['test']} comparison in the family with 2+ runs: no pooled sd of {kind}"
        return row
    if not noise.sd > 0:
        row["note"] = f"zero variance of the family's {kind}: no noise estimate"
        return row
    row["runs_needed_target"] = runs_needed(plan.target_diff / noise.sd, alpha_holm, plan.power, paired)
    row["runs_needed_target_upper"] = runs_needed(plan.target_diff / row["sd_upper"], alpha_holm, plan.power, paired)
    if min(n_method, n_baseline) < MIN_RUNS:
        row["note"] = f"n={min(n_method, n_baseline)}: these runs detect nothing"
        return row
    sizes = (n_method, n_baseline)
    row["detectable_diff_holm"] = noise.sd * detectable_effect(*sizes, alpha_holm, plan.power, paired)
    row["detectable_diff_holm_upper"] = row["sd_upper"] * detectable_effect(*sizes, alpha_holm, plan.power, paired)
    row["detectable_diff_alpha"] = noise.sd * detectable_effect(*sizes, plan.alpha, plan.power, paired)
    return row


def _cost(costs: pd.DataFrame | None, method: str, student) -> tuple[float, str]:
    """Median seconds of one run of `method` on `student` and the device(s) those runs used
    (NaN, '' without timed runs)."""
    if costs is None or costs.empty:
        return math.nan, ""
    these = costs[(costs["method"] == method) & (costs["student"] == student)]
    seconds = pd.to_numeric(these["seconds"], errors="coerce")
    median = float(seconds.median()) if seconds.notna().any() else math.nan
    return median, " / ".join(sorted(these["device"].dropna().astype(str).unique()))


def hours_unit(device: str) -> str:
    """GPU-hours where the runs used a GPU, else CPU-hours (wall-clock hours of one job)."""
    return "GPU-hours" if any(k in device for k in ("cuda", "mps")) else "CPU-hours"


@dataclass(frozen=True)
class Family:
    """One family of comparisons (Holm's unit): its name, its comparisons (rows of
    `compare` or the controls', with their p-values), the runs they test and those runs'
    costs (run_costs)."""

    name: str
    comparisons: pd.DataFrame
    runs: pd.DataFrame
    costs: pd.DataFrame | None = None


@dataclass(frozen=True)
class Sample:
    """One comparison's runs: the method's `x`, the baseline's `y` (aligned when paired)."""

    comparison: dict
    x: np.ndarray
    y: np.ndarray
    paired: bool
    in_family: bool


def family_noise(samples: Sequence[Sample], by: Sequence[str]) -> dict[bool, Noise]:
    """{paired: Noise} of a family's tested comparisons (see the module docstring):
    Welch groups each counted once, paired differences one sample per comparison."""
    groups: dict[tuple, np.ndarray] = {}
    differences = []
    for s in samples:
        if not s.in_family:
            continue
        if s.paired:
            differences.append(s.x - s.y)
            continue
        where = tuple(s.comparison[k] for k in by)
        groups.setdefault((s.comparison["method"], *where), s.x)
        groups.setdefault((s.comparison["baseline"], *where), s.y)
    return {False: Noise.pooled(groups.values()), True: Noise.pooled(differences)}


def power_table(
    family: Family, plan: PowerPlan, value: str = "test_acc", by: Sequence[str] = ("student", "factor")
) -> pd.DataFrame:
    """A power row for each comparison of `family` (method, baseline and `by`).

    m = the comparisons with a p-value (Holm's family as the tests have it) sets alpha / m;
    the sd is pooled over them (`family_noise`). Runs are paired exactly where `compare`
    pairs them (`igkd.analysis.pairing.aligned_samples`)."""
    comparisons, runs, costs, name = family.comparisons, family.runs, family.costs, family.name
    by = list(by)
    for column in ("method", "baseline", *by):
        if column not in comparisons.columns:
            raise InputError(f"{name} comparisons: missing column {column!r}")
    for column in ("method", value, *by):
        if column not in runs.columns:
            raise InputError(f"{name} runs table: missing column {column!r}")
    in_family = tested(comparisons)
    samples = []
    for comp, member in zip(comparisons.to_dict("records"), in_family):
        here = np.logical_and.reduce([runs[k] == comp[k] for k in by]) if by else np.ones(len(runs), bool)
        a = runs[here & (runs["method"] == comp["method"])]
        b = runs[here & (runs["method"] == comp["baseline"])]
        samples.append(Sample(comp, *aligned_samples(a, b, value), bool(member)))
    noise = family_noise(samples, by)
    m = int(in_family.sum())
    rows = []
    for s in samples:
        comp = s.comparison
        row = {"family": name, **{k: comp[k] for k in ("method", "baseline", *by)}}
        row.update(plan_comparison(len(s.x), len(s.y), s.paired, noise[s.paired], plan, m))
        row["diff"] = float(s.x.mean() - s.y.mean()) if len(s.x) and len(s.y) else math.nan
        row["sd_comparison"] = _comparison_sd(s.x, s.y, s.paired)
        notes = [row["note"]] if row["note"] else []
        if not s.in_family:
            notes.insert(0, "not tested (no p-value): outside the Holm family")
        sec_m, dev_m = _cost(costs, comp["method"], comp.get("student"))
        sec_b, dev_b = _cost(costs, comp["baseline"], comp.get("student"))
        device = " / ".join(dict.fromkeys(d for d in (dev_m, dev_b) if d))
        per_run = sec_m + sec_b
        row.update(
            seconds_method=sec_m,
            seconds_baseline=sec_b,
            device=device,
            hours_target=row["runs_needed_target"] * per_run / 3600,
            hours_target_upper=row["runs_needed_target_upper"] * per_run / 3600,
            hours_unit=hours_unit(device),
        )
        if not math.isfinite(per_run):
            notes.append("no runtime.json wall time: hours unknown")
        row["note"] = "; ".join(notes)
        rows.append(row)
    out = pd.DataFrame(rows, columns=POWER_COLUMNS)
    for column in RUN_COLUMNS:  # whole runs; inf (beyond SEARCH_LIMIT) -> empty cell
        numbers = out[column].astype(float)
        out[column] = numbers.where(np.isfinite(numbers)).round().astype("Int64")
    for column in HOUR_COLUMNS:
        numbers = out[column].astype(float)
        out[column] = numbers.where(np.isfinite(numbers))
    out["sd_df"] = out["sd_df"].astype("Int64")
    return out


def runs_needed_curve(sd: float, diffs: Sequence[float], alpha: float, power: float, paired: bool) -> np.ndarray:
    """Runs per group needed for each difference in `diffs` at noise `sd` (fig_power)."""
    return np.array([runs_needed(d / sd, alpha, power, paired) for d in diffs], dtype=float)


SECTION_COLUMNS = {
    "method": "method",
    "baseline": "baseline",
    "student": "student",
    "test": "test",
    "n": "n",
    "sd_comparison": "sd (this comparison)",
    "sd_pooled": "sd (pooled)",
    "sd_df": "df",
    "sd_upper": "sd (upper)",
    "detectable_diff_holm": "detectable (α/m)",
    "detectable_diff_holm_upper": "detectable (α/m, upper sd)",
    "detectable_diff_alpha": "detectable (α)",
    "runs_needed_target": "runs (target)",
    "runs_needed_target_upper": "runs (target, upper sd)",
    "hours_target": "hours (target)",
    "hours_target_upper": "hours (target, upper sd)",
    "note": "note",
}


def power_section(table: pd.DataFrame, plan: PowerPlan, heading: str = "## Power and cost") -> str:
    """The Markdown section stats.md and controls.md carry: what these runs can detect and
    what settling a difference of the planned size would take (the full table is stats/power.csv)."""
    if table.empty:
        return f"{heading}\n\n_No comparisons: nothing to plan._\n"
    m = int(table["family_size"].iloc[0])
    devices = ", ".join(d for d in table["device"].dropna().unique() if d) or "unknown (no runtime.json)"
    units = ", ".join(dict.fromkeys(table["hours_unit"]))
    level = f"{100 * plan.confidence:.4g} %"
    shown = table.assign(n=[f"{a}/{b}" for a, b in zip(table["n_method"], table["n_baseline"])])
    shown = shown[list(SECTION_COLUMNS)].rename(columns=SECTION_COLUMNS)
    return "\n".join(
        [
            heading,
            "",
            f"How many runs settle a true difference of {plan.target_diff:g}, at {100 * plan.power:g} % power, "
            f"two-sided at Holm's strictest step α/m = {plan.alpha:g}/{m} = {plan.holm_alpha(m):.3g} "
            f"(m: the {m} comparisons with a p-value). The plan uses an sd pooled over this family, "
            "not each comparison's own: for welch rows the within-method variance of every tested "
            "method group (each counted once), for paired rows the variance of the per-pair "
            "differences of every tested paired comparison; df = Σ(n − 1). sd (upper): its one-sided "
            f"{level} upper confidence bound (chi-square); the columns marked 'upper sd' plan with it, "
            "so few df show as a wide gap between the two plans. Comparisons sharing a baseline have "
            "correlated differences, so the true df are fewer and the bound is optimistic. "
            "detectable: the smallest true difference these runs find, at α/m (and at α = "
            f"{plan.alpha:g}). runs: per group (pairs when paired), at α/m. hours: those runs times "
            "the median wall time of one method run plus one baseline run, "
            f"measured on {devices} ({units}); a shared baseline is counted in every comparison. "
            "No power at the observed difference is given: it is a transform of the p-value. "
            "An empty cell is explained in `note`.",
            "",
            to_markdown(shown, formats={c: "{:.2f}" for c in ("hours (target)", "hours (target, upper sd)")}),
            "",
        ]
    )


def write_power(families: Sequence[Family], plan: PowerPlan, path) -> pd.DataFrame:
    """stats/power.csv: every family's power rows, one table (written atomically)."""
    tables = [power_table(f, plan) for f in families]
    out = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=POWER_COLUMNS)
    write_csv(path, out)
    return out
