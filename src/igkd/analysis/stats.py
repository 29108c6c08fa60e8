"""Statistics over Monte Carlo runs: summaries, method-vs-baseline tests, normality checks.

The paper we reproduce reported best-of-N accuracies next to p-values, used a paired
t-test on independent runs and did not correct for multiple comparisons. This module is
built to avoid all three:

* every summary and test uses *all* runs of a group (mean with a t-interval; min/max are
  descriptive only);
* the default test is Welch's t-test, which assumes neither pairing nor equal variances;
  a paired test is used only when both methods ran on exactly the same
  (seed, subsample) pairs, i.e. when the pairing really exists in the design;
* p-values are Holm-corrected across the whole family of comparisons in the table.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats as st
from statsmodels.stats.diagnostic import lilliefors
from statsmodels.stats.multitest import multipletests

from igkd.analysis.markdown import to_markdown
from igkd.analysis.pairing import PAIR_KEYS, aligned_samples
from igkd.analysis.power import Family, PowerPlan, power_section, power_table
from igkd.io import InputError, atomic_path, write_csv

SUMMARY_STATS = ["n", "mean", "sd", "median", "min", "max", "sem", "ci_low", "ci_high"]
COMPARE_COLUMNS = [
    "method",
    "baseline",
    "drop",
    "factor",
    "test",
    "n_method",
    "n_baseline",
    "mean_method",
    "mean_baseline",
    "diff",
    "diff_ci_low",
    "diff_ci_high",
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


def summarize(
    runs: pd.DataFrame,
    value: str = "test_acc",
    by: Sequence[str] = ("method", "drop", "factor"),
    confidence: float = 0.95,
    method_order: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Per-group n, mean, sd (ddof=1), median, min, max, sem and t-interval of the mean.

    ci = mean ± t_{(1+confidence)/2, n-1} · sd/√n. The t (not normal) quantile is used
    because n is a handful of Monte Carlo repeats. For n == 1 sd, sem and the CI are NaN:
    one run says nothing about run-to-run spread. Rows are sorted by factor, then by
    `method_order` (unknown methods after, alphabetically), then the other keys.
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
    out = out[by + SUMMARY_STATS]
    ranks = {"method": _method_rank(out["method"], method_order)} if "method" in by else {}
    keys = (["factor"] if "factor" in by else []) + [k for k in ["method", *by] if k != "factor"]
    return _sort(out, list(dict.fromkeys(keys)), ranks)


# --------------------------------------------------------------------------- compare


def _hedges_j(df: float) -> float:
    """Small-sample bias correction J = 1 - 3/(4·df - 1) (Hedges 1981, approximation)."""
    return 1.0 - 3.0 / (4.0 * df - 1.0)


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


def compare(
    runs: pd.DataFrame,
    baselines: Sequence[str] = ("Student", "KD"),
    value: str = "test_acc",
    by: Sequence[str] = ("drop", "factor"),
    alpha: float = 0.05,
    method_order: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Every method against each baseline present, within each `by` group (drop, factor).

    Test choice. Welch's t-test (unequal variances, Welch–Satterthwaite df) is the default
    because runs of different methods are independent samples whose spread can differ.
    The paired t-test is used only when both groups consist of exactly the same set of
    (seed, subsample_sha) pairs (each pair once): then run i of both methods shared
    initialisation seed and training subsample, the pairing is real, and the test on the
    differences removes the shared run-to-run noise. Column ``test`` says which was used.

    diff = mean_method − mean_baseline; its (1 − alpha) CI is scipy's
    ``confidence_interval()`` of the test (Welch–Satterthwaite for welch, t-interval of the
    mean difference for paired); ``df`` is the matching degrees of freedom.

    Multiple comparisons. ``p_holm`` is the Holm step-down adjustment over the *whole*
    table (all groups, methods and baselines), controlling the family-wise error rate at
    ``alpha`` without independence assumptions; ``reject_holm = p_holm < alpha``.

    Effect size (Hedges' g), with J(df) = 1 − 3 / (4·df − 1):
      welch:  g = diff / s_p · J(n1 + n2 − 2),
              s_p = √(((n1 − 1)·s1² + (n2 − 1)·s2²) / (n1 + n2 − 2));
      paired: g = mean(d) / sd(d) · J(n − 1), d = method − baseline per matched run (d_z).

    Groups where a test is undefined (n < 2 in either group for Welch, fewer than 2 pairs
    for paired, or zero variance) get NaN statistics, NaN ``p_holm`` and NA
    ``reject_holm``, and are excluded from the Holm family. A pair of two baselines is
    tested once (the first baseline in `baselines` is the reference).
    """
    by = list(by)
    _validate(runs, value, ["method", *by, *PAIR_KEYS])
    if not 0 < alpha < 1:
        raise InputError(f"alpha must be in (0, 1), got {alpha}")
    rows = []
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
                res = _test_pair(group[group["method"] == m], b, value, 1 - alpha)
                rows.append({"method": m, "baseline": base, **dict(zip(by, gkey)), **res})
    cols = list(dict.fromkeys(["method", "baseline", *by, *COMPARE_COLUMNS]))
    out = pd.DataFrame(rows, columns=cols)
    out["p_holm"] = np.nan
    out["reject_holm"] = pd.array([pd.NA] * len(out), dtype="boolean")
    ok = out["p"].notna().to_numpy()
    if ok.any():
        p_raw = out.loc[ok, "p"].to_numpy(float)
        _, p_holm, _, _ = multipletests(p_raw, alpha=alpha, method="holm")
        out.loc[ok, "p_holm"] = p_holm
        out.loc[ok, "reject_holm"] = p_holm < alpha
    ranks = {
        "method": _method_rank(out["method"], method_order),
        "baseline": {b: i for i, b in enumerate(baselines)},
    }
    keys = (["factor"] if "factor" in by else []) + [k for k in by if k != "factor"]
    return _sort(out[cols], [*keys, "baseline", "method"], ranks)


# --------------------------------------------------------------------------- normality


def normality(
    runs: pd.DataFrame,
    value: str = "test_acc",
    by: Sequence[str] = ("method", "drop", "factor"),
    method_order: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Lilliefors test of normality per group (a check on the t-test assumptions).

    Lilliefors is the Kolmogorov–Smirnov test with mean and sd estimated from the sample,
    so its p-value is valid where plain KS against a fitted normal is not. It needs n >= 4
    and non-constant values; otherwise ks_stat/p are NaN and ``normal_at_0.05`` is NA.
    ``normal_at_0.05`` is True when normality is *not rejected* (p >= 0.05), which with a
    handful of runs is weak evidence of normality, not proof.
    """
    by = list(by)
    _validate(runs, value, by)
    rows = []
    for gkey, group in runs.groupby(by, sort=False, dropna=False):
        gkey = gkey if isinstance(gkey, tuple) else (gkey,)
        x = group[value].to_numpy(float)
        ks, p = np.nan, np.nan
        if len(x) >= 4 and np.std(x) > 0:
            ks, p = (float(v) for v in lilliefors(x, dist="norm"))
        rows.append({**dict(zip(by, gkey)), "n": len(x), "ks_stat": ks, "p": p})
    out = pd.DataFrame(rows, columns=[*by, "n", "ks_stat", "p"])
    flag = pd.array([pd.NA] * len(out), dtype="boolean")
    ok = out["p"].notna().to_numpy()
    flag[ok] = out.loc[ok, "p"].to_numpy() >= 0.05
    out["normal_at_0.05"] = flag
    ranks = {"method": _method_rank(out["method"], method_order)} if "method" in by else {}
    keys = (["factor"] if "factor" in by else []) + [k for k in ["method", *by] if k != "factor"]
    return _sort(out, list(dict.fromkeys(keys)), ranks)


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
    norm = normality(runs, value=value, method_order=method_order)
    paths = {
        "summary": out_dir / "summary.csv",
        "comparisons": out_dir / "comparisons.csv",
        "normality": out_dir / "normality.csv",
        "markdown": out_dir / "stats.md",
    }
    write_csv(paths["summary"], summary)
    write_csv(paths["comparisons"], comps)
    write_csv(paths["normality"], norm)

    level = f"{100 * (1 - alpha):g} %"
    n_family = int(comps["p"].notna().sum())
    md = "\n".join(
        [
            f"# Statistics of `{value}`",
            "",
            "## Summary",
            "",
            f"All runs per group: mean, sd (ddof=1) and {level} t-interval of the mean; "
            "min/max are descriptive only (no best-of-N).",
            "",
            to_markdown(summary),
            "",
            "## Comparisons with baselines",
            "",
            "Welch's t-test (unequal variances) on independent runs; paired t-test only where "
            "both methods ran on the same (seed, subsample) pairs (column `test`). "
            f"diff = method − baseline with {level} CI; p_holm: Holm correction over all "
            f"{n_family} comparisons in this table, reject at α = {alpha:g}; "
            "hedges_g: bias-corrected standardized difference (pooled sd; d_z for paired).",
            "",
            to_markdown(comps) if len(comps) else "_No baseline present: no comparisons._",
            "",
            "## Normality",
            "",
            "Lilliefors test (Kolmogorov–Smirnov with estimated mean and sd) per group, n >= 4; "
            "normal_at_0.05 = normality not rejected at 0.05.",
            "",
            to_markdown(norm, formats={"ks_stat": "{:.3f}"}),
            "",
            power_section(power_table(Family("methods", comps, runs, costs), plan, value=value), plan),
        ]
    )
    with atomic_path(paths["markdown"]) as tmp:
        tmp.write_text(md, encoding="utf-8")
    return paths
