"""Statistics over Monte Carlo runs: summaries, method-vs-baseline tests, normality checks.

The paper we reproduce reported best-of-N accuracies next to p-values, used a paired
t-test on independent runs and did not correct for multiple comparisons. This module is
built to avoid all three:

* every summary and test uses *all* runs of a group (mean with a t-interval; min/max are
  descriptive only);
* the default test is Welch's t-test, which assumes neither pairing nor equal variances;
  a paired test is used only when both methods ran on exactly the same
  (seed, subsample) pairs, i.e. when the pairing really exists in the design;
* p-values are Holm-corrected across the whole family of comparisons in the table, and
  each difference carries, beside its unadjusted interval, a simultaneous (Bonferroni)
  interval over the same family, so an interval is never read against the wrong p-value;
* normality is checked on what each test assumes normal: the per-pair differences of a
  paired test, each group of a Welch test.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as st
from statsmodels.stats.diagnostic import lilliefors
from statsmodels.stats.multitest import multipletests

from igkd.analysis.markdown import to_markdown
from igkd.analysis.pairing import PAIR_KEYS, aligned_samples
from igkd.analysis.power import Family, PowerPlan, power_section, power_table, tested
from igkd.analysis.students import student_ranks
from igkd.io import InputError, atomic_path, write_csv

SUMMARY_STATS = ["n", "mean", "sd", "median", "min", "max", "sem", "ci_low", "ci_high", "ci_level"]
COMPARE_COLUMNS = [
    "method",
    "baseline",
    "student",
    "factor",
    "test",
    "n_method",
    "n_baseline",
    "mean_method",
    "mean_baseline",
    "diff",
    "diff_ci_low",
    "diff_ci_high",
    "diff_sci_low",
    "diff_sci_high",
    "t",
    "df",
    "p",
    "p_holm",
    "reject_holm",
    "hedges_g",
]


# --------------------------------------------------------------------------- validation


def _validate(runs: pd.DataFrame, value: str, required: Iterable[str]) -> None:
    """Raise InputError for missing columns, a non-numeric/NaN value column or no rows."""
    if not isinstance(runs, pd.DataFrame):
        raise InputError(f"runs table: expected a pandas DataFrame, got {type(runs).__name__}")
    needed = list(dict.fromkeys([*required, value]))
    missing = [c for c in needed if c not in runs.columns]
    if missing:
        raise InputError(f"runs table: missing required column(s) {missing}; present: {list(runs.columns)}")
    col = runs[value]
    if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        raise InputError(f"runs table: column {value!r} must be numeric, got dtype {col.dtype}")
    if len(runs) == 0:
        raise InputError("runs table: no rows")
    n_nan = int(col.isna().sum())
    if n_nan:
        # A missing accuracy means a run failed or was not collected: silently dropping it
        # would shrink n without anyone noticing, so refuse instead.
        raise InputError(f"runs table: column {value!r} has {n_nan} missing value(s)")


def _method_rank(methods: Iterable[str], method_order: Sequence[str] | None) -> dict[str, int]:
    """Rank of each method: position in `method_order`, unknown ones after, alphabetically."""
    order = list(method_order or [])
    present = list(dict.fromkeys(methods))
    known = [m for m in order if m in present]
    unknown = sorted((m for m in present if m not in order), key=str)
    return {m: i for i, m in enumerate(known + unknown)}


def _student_rank(frame: pd.DataFrame, by: Sequence[str]) -> dict[str, dict]:
    """{"student": rank map} where `by` groups by student (igkd.analysis.students order), else {}."""
    return {"student": student_ranks(frame["student"])} if "student" in by else {}


def _sort(frame: pd.DataFrame, keys: Sequence[str], ranks: Mapping[str, Mapping]) -> pd.DataFrame:
    """Stable sort by `keys`; columns named in `ranks` sort by the given rank map."""
    keys = [k for k in keys if k in frame.columns]
    if not keys or frame.empty:
        return frame.reset_index(drop=True)

    def key(col: pd.Series) -> pd.Series:
        if col.name in ranks:
            return col.map(ranks[col.name])
        return col

    return frame.sort_values(list(keys), key=key, kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------- summarize


def level_label(confidence: float) -> str:
    """A confidence level as tables and figure titles print it: 0.95 -> '95 %', 1 - 0.05/13 -> '99.62 %'."""
    return f"{100 * confidence:.4g} %"


def summarize(
    runs: pd.DataFrame,
    value: str = "test_acc",
    by: Sequence[str] = ("method", "student", "factor"),
    confidence: float = 0.95,
    method_order: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Per-group n, mean, sd (ddof=1), median, min, max, sem and t-interval of the mean.

    ci = mean ± t_{(1+confidence)/2, n-1} · sd/√n. The t (not normal) quantile is used
    because n is a handful of Monte Carlo repeats. For n == 1 sd, sem and the CI are NaN:
    one run says nothing about run-to-run spread. ``ci_level`` is `confidence`, so a figure
    drawn from the table names the level its bars have (stats.alpha sets it: 1 - alpha).
    Rows are sorted by factor, then by `method_order` (unknown methods after,
    alphabetically), then the other keys (students in igkd.analysis.students order).
    """
    by = list(by)
    _validate(runs, value, by)
    if not 0 < confidence < 1:
        raise InputError(f"confidence must be in (0, 1), got {confidence}")
    grouped = runs.groupby(by, sort=False, dropna=False)[value]
    out = grouped.agg(
        n="count", mean="mean", sd=lambda x: x.std(ddof=1), median="median", min="min", max="max"
    ).reset_index()
    n = out["n"].astype(float)
    out["sem"] = out["sd"] / np.sqrt(n)
    with np.errstate(invalid="ignore"):
        tcrit = st.t.ppf((1 + confidence) / 2, n - 1)
    tcrit = np.where(n >= 2, tcrit, np.nan)
    out["ci_low"] = out["mean"] - tcrit * out["sem"]
    out["ci_high"] = out["mean"] + tcrit * out["sem"]
    out["ci_level"] = float(confidence)
    out = out[by + SUMMARY_STATS]
    ranks = {"method": _method_rank(out["method"], method_order)} if "method" in by else {}
    ranks.update(_student_rank(out, by))
    keys = (["factor"] if "factor" in by else []) + [k for k in ["method", *by] if k != "factor"]
    return _sort(out, list(dict.fromkeys(keys)), ranks)


# --------------------------------------------------------------------------- compare


MIN_G_DF = 2  # below this J(df) is 0 (exactly as in the approximation): no unbiased g exists


def _hedges_j(df: float) -> float:
    """Small-sample bias correction J = 1 - 3/(4·df - 1) (Hedges 1981, approximation).

    NaN for df < MIN_G_DF: at df = 1 (two pairs) both the exact J and this one are 0, which
    would print every effect as g = 0.00, a number that reads as "no effect"."""
    if df < MIN_G_DF:
        return math.nan
    return 1.0 - 3.0 / (4.0 * df - 1.0)


def comparison_pairs(
    runs: pd.DataFrame, baselines: Sequence[str], by: Sequence[str]
) -> Iterator[tuple[dict, str, str, pd.DataFrame, pd.DataFrame]]:
    """(by-values, method, baseline, method runs, baseline runs) for every method against each
    baseline present, within each `by` group; a pair of two baselines comes once (the first
    baseline in `baselines` is the reference). `compare` tests these, `normality` checks them."""
    by = list(by)
    for gkey, group in runs.groupby(by, sort=False, dropna=False):
        gkey = gkey if isinstance(gkey, tuple) else (gkey,)
        methods = list(dict.fromkeys(group["method"]))
        done: set[frozenset] = set()
        for base in baselines:
            if base not in methods:
                continue
            b = group[group["method"] == base]
            for m in methods:
                pair = frozenset((m, base))
                if m == base or pair in done:
                    continue
                done.add(pair)
                yield dict(zip(by, gkey)), m, base, group[group["method"] == m], b


def _test_pair(a: pd.DataFrame, b: pd.DataFrame, value: str, confidence: float) -> dict:
    """Test method runs `a` against baseline runs `b`; see `compare` for the formulas."""
    x, y, paired = aligned_samples(a, b, value)
    res = dict(
        test="paired" if paired else "welch",
        n_method=len(x),
        n_baseline=len(y),
        mean_method=x.mean(),
        mean_baseline=y.mean(),
        diff=x.mean() - y.mean(),
        diff_ci_low=np.nan,
        diff_ci_high=np.nan,
        t=np.nan,
        df=np.nan,
        p=np.nan,
        hedges_g=np.nan,
    )
    if paired:
        d = x - y
        if len(d) < 2 or not np.std(d) > 0:
            return res  # too few pairs, or constant differences: no variance to test against
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            r = st.ttest_rel(x, y)
        g = d.mean() / d.std(ddof=1) * _hedges_j(len(d) - 1)
    else:
        if len(x) < 2 or len(y) < 2 or not (np.std(x) > 0 or np.std(y) > 0):
            return res  # a one-run group has no variance estimate; Welch needs both
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            r = st.ttest_ind(x, y, equal_var=False)
        dfp = len(x) + len(y) - 2
        sp = math.sqrt(((len(x) - 1) * x.var(ddof=1) + (len(y) - 1) * y.var(ddof=1)) / dfp)
        g = (x.mean() - y.mean()) / sp * _hedges_j(dfp)
    ci = r.confidence_interval(confidence_level=confidence)
    res.update(
        diff_ci_low=float(ci.low),
        diff_ci_high=float(ci.high),
        t=float(r.statistic),
        df=float(r.df),
        p=float(r.pvalue),
        hedges_g=float(g),
    )
    return res


def adjust_family(comps: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Holm p-values and Bonferroni simultaneous intervals over one family, in place.

    The family is the rows with a p-value (m of them); the others get NaN/NA. ``p_holm`` is
    Holm's step-down adjustment (family-wise error rate alpha, no independence assumed),
    ``reject_holm = p_holm < alpha``. ``diff_sci_low/high`` widen each row's unadjusted
    (1 − alpha) interval ``diff_ci_low/high`` (diff ± t_{1−alpha/2, df}·se) to the
    Bonferroni level 1 − alpha/m: diff ± t_{1−alpha/(2m), df}·se, so all m intervals cover
    their true differences together with probability >= 1 − alpha. Holm's step-down has no
    simple interval of its own; the Bonferroni one is the matching simultaneous interval: one
    that excludes 0 has p < alpha/m, hence p_holm < alpha (Holm rejects it), while Holm
    can reject a difference whose simultaneous interval still contains 0.
    """
    comps["p_holm"] = np.nan
    comps["reject_holm"] = pd.array([pd.NA] * len(comps), dtype="boolean")
    comps["diff_sci_low"] = np.nan
    comps["diff_sci_high"] = np.nan
    ok = tested(comps)
    m = int(ok.sum())
    if not m:
        return comps
    _, p_holm, _, _ = multipletests(comps.loc[ok, "p"].to_numpy(float), alpha=alpha, method="holm")
    comps.loc[ok, "p_holm"] = p_holm
    comps.loc[ok, "reject_holm"] = p_holm < alpha
    df = comps.loc[ok, "df"].to_numpy(float)
    low, high = comps.loc[ok, "diff_ci_low"].to_numpy(float), comps.loc[ok, "diff_ci_high"].to_numpy(float)
    half = (high - low) / 2 * st.t.isf(alpha / (2 * m), df) / st.t.isf(alpha / 2, df)
    centre = (high + low) / 2
    comps.loc[ok, "diff_sci_low"] = centre - half
    comps.loc[ok, "diff_sci_high"] = centre + half
    return comps


def family_size(comps: pd.DataFrame) -> int:
    """m of Holm's family: the comparisons that got a p-value (see `adjust_family`)."""
    return int(tested(comps).sum())


def compare(
    runs: pd.DataFrame,
    baselines: Sequence[str] = ("Student", "KD"),
    value: str = "test_acc",
    by: Sequence[str] = ("student", "factor"),
    alpha: float = 0.05,
    method_order: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Every method against each baseline present, within each `by` group (student, factor).

    Test choice. Welch's t-test (unequal variances, Welch–Satterthwaite df) is the default
    because runs of different methods are independent samples whose spread can differ.
    The paired t-test is used only when both groups consist of exactly the same set of
    (seed, subsample_sha) pairs (each pair once): then run i of both methods shared
    initialisation seed and training subsample, the pairing is real, and the test on the
    differences removes the shared run-to-run noise. Column ``test`` says which was used.

    diff = mean_method − mean_baseline. ``diff_ci_low/high`` is its *unadjusted* (1 − alpha)
    interval, scipy's ``confidence_interval()`` of the test (Welch–Satterthwaite for welch,
    t-interval of the mean difference for paired), which matches the raw ``p``;
    ``diff_sci_low/high`` is the simultaneous (Bonferroni, 1 − alpha/m) interval that
    matches the family-wise ``p_holm`` (`adjust_family`); ``df`` is the test's degrees of
    freedom.

    Multiple comparisons. ``p_holm`` is the Holm step-down adjustment over the *whole*
    table (all groups, methods and baselines), controlling the family-wise error rate at
    ``alpha`` without independence assumptions; ``reject_holm = p_holm < alpha``.

    Effect size (Hedges' g), with J(df) = 1 − 3 / (4·df − 1):
      welch:  g = diff / s_p · J(n1 + n2 − 2),
              s_p = √(((n1 − 1)·s1² + (n2 − 1)·s2²) / (n1 + n2 − 2));
      paired: g = mean(d) / sd(d) · J(n − 1), d = method − baseline per matched run (d_z).

    Groups where a test is undefined (n < 2 in either group for Welch, fewer than 2 pairs
    for paired, or zero variance) get NaN statistics, NaN ``p_holm`` and intervals and NA
    ``reject_holm``, and are excluded from the Holm family. A pair of two baselines is
    tested once (the first baseline in `baselines` is the reference).
    """
    by = list(by)
    _validate(runs, value, ["method", *by, *PAIR_KEYS])
    if not 0 < alpha < 1:
        raise InputError(f"alpha must be in (0, 1), got {alpha}")
    rows = [
        {"method": m, "baseline": base, **where, **_test_pair(a, b, value, 1 - alpha)}
        for where, m, base, a, b in comparison_pairs(runs, baselines, by)
    ]
    cols = list(dict.fromkeys(["method", "baseline", *by, *COMPARE_COLUMNS]))
    out = adjust_family(pd.DataFrame(rows, columns=cols), alpha)
    ranks = {
        "method": _method_rank(out["method"], method_order),
        "baseline": {b: i for i, b in enumerate(baselines)},
        **_student_rank(out, by),
    }
    keys = (["factor"] if "factor" in by else []) + [k for k in by if k != "factor"]
    return _sort(out[cols], [*keys, "baseline", "method"], ranks)


# --------------------------------------------------------------------------- normality


NORMALITY_COLUMNS = ["method", "baseline", "test", "tested", "n", "ks_stat", "p", "normal_at_0.05"]
MIN_NORMALITY_N = 4  # Lilliefors' tables start at n = 4


def _lilliefors(x: np.ndarray) -> tuple[float, float]:
    """(KS statistic, p) of Lilliefors' test, NaN for n < 4 or constant values."""
    if len(x) < MIN_NORMALITY_N or not np.std(x) > 0:
        return np.nan, np.nan
    ks, p = lilliefors(x, dist="norm")
    return float(ks), float(p)


def normality(
    runs: pd.DataFrame,
    baselines: Sequence[str] = ("Student", "KD"),
    value: str = "test_acc",
    by: Sequence[str] = ("student", "factor"),
    method_order: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Lilliefors test of what each comparison's t-test assumes normal.

    For every comparison `compare` makes (method, baseline, `by`): a paired t-test assumes
    the per-pair *differences* are normal, so those are tested (``tested`` = "differences
    KD_IG - Student"); Welch's test assumes each group is normal, so each is tested
    (two rows, "group KD_IG" and "group Student"). A group no Welch comparison tests gets one
    descriptive row (``test`` = "none", no baseline): the group's own distribution, which
    the paper claimed normal but no test here assumes.

    Lilliefors rather than Shapiro–Wilk: the paper used Lilliefors, so its claim is checked
    with its own test. It is the Kolmogorov–Smirnov test with mean and sd estimated from the
    sample, so its p-value is valid where plain KS against a fitted normal is not. It needs
    n >= 4 and non-constant values; otherwise ks_stat/p are NaN and ``normal_at_0.05`` is
    NA. ``normal_at_0.05`` is True when normality is *not rejected* (p >= 0.05); with a
    handful of runs, and a test less powerful than Shapiro–Wilk at small n, that is weak
    evidence of normality, not proof.
    """
    by = list(by)
    _validate(runs, value, ["method", *by, *PAIR_KEYS])
    rows, tested_groups = [], set()
    for where, m, base, a, b in comparison_pairs(runs, baselines, by):
        x, y, paired = aligned_samples(a, b, value)
        common = {"method": m, "baseline": base, **where}
        if paired:
            samples = [("paired", f"differences {m} - {base}", x - y)]
        else:
            samples = [("welch", f"group {m}", x), ("welch", f"group {base}", y)]
            tested_groups |= {(m, *where.values()), (base, *where.values())}
        for test, quantity, sample in samples:
            ks, p = _lilliefors(sample)
            rows.append({**common, "test": test, "tested": quantity, "n": len(sample), "ks_stat": ks, "p": p})
    for gkey, group in runs.groupby(["method", *by], sort=False, dropna=False):
        gkey = gkey if isinstance(gkey, tuple) else (gkey,)
        if gkey in tested_groups:
            continue
        ks, p = _lilliefors(group[value].to_numpy(float))
        where = dict(zip(["method", *by], gkey))
        rows.append({**where, "test": "none", "tested": f"group {gkey[0]}", "n": len(group), "ks_stat": ks, "p": p})
    cols = list(dict.fromkeys(["method", "baseline", *by, *NORMALITY_COLUMNS]))
    out = pd.DataFrame(rows, columns=cols)
    flag = pd.array([pd.NA] * len(out), dtype="boolean")
    ok = out["p"].notna().to_numpy()
    flag[ok] = out.loc[ok, "p"].to_numpy() >= 0.05
    out["normal_at_0.05"] = flag
    ranks = {
        "method": _method_rank(out["method"], method_order),
        "baseline": {b: i for i, b in enumerate(baselines)},
        **_student_rank(out, by),
    }
    keys = (["factor"] if "factor" in by else []) + [k for k in by if k != "factor"]
    return _sort(out, [*keys, "baseline", "method"], ranks)


# --------------------------------------------------------------------------- output


def write_stats(
    runs: pd.DataFrame,
    out_dir: str | os.PathLike,
    method_order: Sequence[str] | None = None,
    baselines: Sequence[str] = ("Student", "KD"),
    value: str = "test_acc",
    plan: PowerPlan | None = None,
    costs: pd.DataFrame | None = None,
) -> dict[str, Path]:
    """Write summary.csv, comparisons.csv, normality.csv and stats.md atomically; stats.md
    ends with the power section of these comparisons (`plan`, default PowerPlan(); hours from the runs' `costs`,
    igkd.analysis.collect.run_costs). Tests and intervals use `plan.alpha`.

    Returns ``{"summary", "comparisons", "normality", "markdown"}`` -> path.
    """
    out_dir = Path(out_dir)
    plan = plan or PowerPlan()
    alpha = plan.alpha
    summary = summarize(runs, value=value, confidence=1 - alpha, method_order=method_order)
    comps = compare(runs, baselines=baselines, value=value, alpha=alpha, method_order=method_order)
    norm = normality(runs, baselines=baselines, value=value, method_order=method_order)
    paths = {
        "summary": out_dir / "summary.csv",
        "comparisons": out_dir / "comparisons.csv",
        "normality": out_dir / "normality.csv",
        "markdown": out_dir / "stats.md",
    }
    write_csv(paths["summary"], summary)
    write_csv(paths["comparisons"], comps)
    write_csv(paths["normality"], norm)

    level = level_label(1 - alpha)
    m = family_size(comps)
    md = "\n".join(
        [
            f"# Statistics of `{value}`",
            "",
            "## Summary",
            "",
            f"All runs per group: mean, sd (ddof=1) and {level} t-interval of the mean; "
            "min/max are descriptive only (no best-of-N).",
            "",
            to_markdown(summary.drop(columns="ci_level")),
            "",
            "## Comparisons with baselines",
            "",
            "Welch's t-test (unequal variances) on independent runs; paired t-test only where "
            "both methods ran on the same (seed, subsample) pairs (column `test`). "
            f"diff = method − baseline. {intervals_text(alpha, m)} "
            "hedges_g: bias-corrected standardized difference (pooled sd; d_z for paired).",
            "",
            to_markdown(comps) if len(comps) else "_No baseline present: no comparisons._",
            "",
            "## Normality",
            "",
            "Lilliefors test (Kolmogorov–Smirnov with estimated mean and sd, n >= 4) of what each "
            "comparison's t-test assumes normal: the per-pair differences for a paired test, each "
            "group for a Welch test (column `tested`). Rows with test `none`: a group no Welch test "
            "uses, checked for its own distribution (the paper's claim); no test here assumes it. "
            "normal_at_0.05 = normality not rejected at 0.05, weak evidence with few runs.",
            "",
            to_markdown(norm, formats={"ks_stat": "{:.3f}"}),
            "",
            power_section(power_table(Family("methods", comps, runs, costs), plan, value=value), plan),
        ]
    )
    with atomic_path(paths["markdown"]) as tmp:
        tmp.write_text(md, encoding="utf-8")
    return paths


def intervals_text(alpha: float, m: int) -> str:
    """What the comparison tables' intervals and p-values are (stats.md, controls.md)."""
    simultaneous = level_label(1 - alpha / max(m, 1))
    return (
        f"p_holm: Holm over the {m} tests with a p-value in this table (the family), reject at "
        f"α = {alpha:g}. diff_ci_low/high: the unadjusted {level_label(1 - alpha)} interval of each "
        f"comparison alone (it matches the raw p). diff_sci_low/high: simultaneous {simultaneous} "
        f"(Bonferroni, 1 − α/m) intervals; all {m} cover their true differences together with "
        f"probability ≥ {level_label(1 - alpha)}. Read reject_holm with these, not the unadjusted "
        "ones: Holm has no interval of its own, and a simultaneous interval that excludes 0 "
        "implies reject_holm, not the reverse."
    )
