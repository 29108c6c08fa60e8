"""Tests for igkd.analysis.stats against hand-worked numbers (formulas written out here)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from igkd.analysis.stats import compare, normality, summarize, to_markdown, write_stats
from igkd.io import InputError

T_0975_DF4 = 2.7764451051977987  # t quantile 0.975 with 4 df (tables)


def runs_frame(groups, drop=1, factor=1.5, shared=True):
    """groups: {method: values}. shared=True gives every method seeds 0..n-1 and sha 's<i>';
    shared=False gives each method its own seeds/subsamples (independent runs)."""
    rows = []
    for k, (method, values) in enumerate(groups.items()):
        for i, v in enumerate(values):
            seed = i if shared else 100 * (k + 1) + i
            rows.append(
                dict(
                    method=method,
                    drop=drop,
                    factor=factor,
                    run=i,
                    seed=seed,
                    fraction=1.0,
                    subsample_sha=f"s{seed}",
                    test_acc=float(v),
                )
            )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- summarize


def test_summary_hand_worked():
    x = [90.0, 91.0, 92.0, 94.0, 93.0]
    out = summarize(runs_frame({"KD": x, "one": [80.0]}))
    row = out[out.method == "KD"].iloc[0]
    # mean 92, deviations -2,-1,0,2,1 -> SS 10, var 10/4
    sd = math.sqrt(10 / 4)
    sem = sd / math.sqrt(5)
    assert row.n == 5
    assert row["mean"] == pytest.approx(92.0)
    assert row.sd == pytest.approx(sd)
    assert row["median"] == 92.0 and row["min"] == 90.0 and row["max"] == 94.0
    assert row["sem"] == pytest.approx(sem)
    assert row.ci_low == pytest.approx(92.0 - T_0975_DF4 * sem)
    assert row.ci_high == pytest.approx(92.0 + T_0975_DF4 * sem)
    one = out[out.method == "one"].iloc[0]
    assert one.n == 1 and one["mean"] == 80.0
    assert all(math.isnan(one[c]) for c in ("sd", "sem", "ci_low", "ci_high"))
    assert list(out.columns) == [
        "method",
        "drop",
        "factor",
        "n",
        "mean",
        "sd",
        "median",
        "min",
        "max",
        "sem",
        "ci_low",
        "ci_high",
    ]


def test_summary_confidence_and_order():
    x = [90.0, 91.0, 92.0, 94.0, 93.0]
    frame = pd.concat(
        [
            runs_frame({"zeta": x, "KD": x, "Student": x, "alpha": x}, drop=2, factor=2.0),
            runs_frame({"KD": x, "Student": x}, drop=1, factor=1.5),
        ]
    )
    out = summarize(frame, confidence=0.90, method_order=["Student", "KD"])
    assert list(zip(out.factor, out.method)) == [
        (1.5, "Student"),
        (1.5, "KD"),
        (2.0, "Student"),
        (2.0, "KD"),
        (2.0, "alpha"),
        (2.0, "zeta"),
    ]
    half = out.iloc[0].ci_high - 92.0
    assert half == pytest.approx(st.t.ppf(0.95, 4) * math.sqrt(2.5 / 5))


# ---------------------------------------------------------------- compare


def test_welch_matches_hand_formula():
    a = [1.0, 2.0, 3.0, 4.0]  # mean 2.5, var 5/3
    b = [2.0, 4.0, 6.0, 8.0, 10.0]  # mean 6,   var 10
    out = compare(runs_frame({"Student": b, "IG": a}, shared=False), baselines=("Student",))
    assert len(out) == 1
    row = out.iloc[0]
    assert row.test == "welch" and row.method == "IG" and row.baseline == "Student"
    v1, v2 = (5 / 3) / 4, 10 / 5
    se = math.sqrt(v1 + v2)
    t = (2.5 - 6.0) / se
    df = (v1 + v2) ** 2 / (v1**2 / 3 + v2**2 / 4)  # Welch–Satterthwaite
    p = 2 * st.t.sf(abs(t), df)
    half = st.t.ppf(0.975, df) * se
    assert row["diff"] == pytest.approx(-3.5)
    assert row.t == pytest.approx(t)
    assert row.df == pytest.approx(df)
    assert row.p == pytest.approx(p)
    assert row.diff_ci_low == pytest.approx(-3.5 - half)
    assert row.diff_ci_high == pytest.approx(-3.5 + half)
    # Hedges' g: pooled sd over n1+n2-2 = 7 df, J = 1 - 3/(4*7 - 1)
    sp = math.sqrt((3 * 5 / 3 + 4 * 10) / 7)
    assert row.hedges_g == pytest.approx(-3.5 / sp * (1 - 3 / 27))
    # a family of one: Holm leaves p unchanged
    assert row.p_holm == pytest.approx(p)
    assert bool(row.reject_holm) == bool(p < 0.05)


def test_paired_when_seed_and_subsample_match_and_aligns_runs():
    frame = runs_frame({"IG": [10.0, 12.0, 11.0, 13.0], "Student": [9.0, 10.0, 10.0, 11.0]})
    frame = frame.sample(frac=1.0, random_state=3)  # row order must not matter
    row = compare(frame, baselines=("Student",)).iloc[0]
    assert row.test == "paired"
    d = np.array([1.0, 2.0, 1.0, 2.0])  # per seed: IG - Student
    sd_d = math.sqrt(((d - 1.5) ** 2).sum() / 3)
    t = 1.5 / (sd_d / 2)
    assert row.t == pytest.approx(t)
    assert row.df == 3
    assert row.p == pytest.approx(2 * st.t.sf(t, 3))
    half = st.t.ppf(0.975, 3) * sd_d / 2
    assert (row.diff_ci_low, row.diff_ci_high) == pytest.approx((1.5 - half, 1.5 + half))
    assert row.hedges_g == pytest.approx(1.5 / sd_d * (1 - 3 / (4 * 3 - 1)))
    ref = st.ttest_rel([10, 12, 11, 13], [9, 10, 10, 11])
    assert row.p == pytest.approx(ref.pvalue)


def test_welch_when_subsample_differs():
    frame = runs_frame({"IG": [10.0, 12.0, 11.0, 13.0], "Student": [9.0, 10.0, 10.0, 11.0]})
    ig = frame.method == "IG"
    frame.loc[ig, "subsample_sha"] = "other" + frame.loc[ig, "run"].astype(str)  # other split
    row = compare(frame, baselines=("Student",)).iloc[0]
    assert row.test == "welch"
    ref = st.ttest_ind([10, 12, 11, 13], [9, 10, 10, 11], equal_var=False)
    assert row.p == pytest.approx(ref.pvalue)
    # one run fewer on one side also breaks the pairing
    short = runs_frame({"IG": [10.0, 12.0, 11.0], "Student": [9.0, 10.0, 10.0, 11.0]})
    assert compare(short, baselines=("Student",)).iloc[0].test == "welch"


def test_holm_across_whole_table_with_monotone_step():
    base = [90.0, 91.0, 92.0, 93.0, 94.0]
    g1 = runs_frame(
        {"Student": base, "A": [93.0, 94.5, 95.0, 96.5, 97.0], "B": [93.0, 94.5, 95.0, 96.5, 97.1], "lone": [99.0]},
        drop=1,
        factor=1.5,
        shared=False,
    )
    g2 = runs_frame({"Student": base, "C": [91.0, 91.0, 92.5, 94.0, 93.0]}, drop=2, factor=2.0, shared=False)
    out = compare(pd.concat([g1, g2]), baselines=("Student",))
    assert set(out.method) == {"A", "B", "C", "lone"}
    lone = out[out.method == "lone"].iloc[0]
    assert math.isnan(lone.p) and math.isnan(lone.p_holm) and pd.isna(lone.reject_holm)
    # hand Holm step-down over the 3 finite p-values (the n=1 group is not in the family)
    fam = out[out.p.notna()].sort_values("p")
    p1, p2, p3 = fam.p.tolist()
    adj1 = min(1.0, 3 * p1)
    adj2 = min(1.0, max(adj1, 2 * p2))
    adj3 = min(1.0, max(adj2, 1 * p3))
    assert 2 * p2 < 3 * p1  # the max step is exercised: B's raw bound is below A's
    assert fam.p_holm.tolist() == pytest.approx([adj1, adj2, adj3])
    assert fam.reject_holm.tolist() == [a < 0.05 for a in (adj1, adj2, adj3)]


def test_baseline_pair_tested_once_and_self_skipped():
    x = [90.0, 91.0, 92.0, 93.0]
    out = compare(runs_frame({"Student": x, "KD": x[::-1], "IG": x}))
    pairs = list(zip(out.method, out.baseline))
    assert pairs == [("IG", "Student"), ("KD", "Student"), ("IG", "KD")]


# ---------------------------------------------------------------- normality


def test_lilliefors():
    rng = np.random.default_rng(0)
    frame = runs_frame({"KD": rng.normal(90, 1, 12), "IG": [1.0, 2.0, 3.0], "flat": [5.0] * 6})
    out = normality(frame).set_index("method")
    assert 0 < out.loc["KD", "p"] <= 1 and out.loc["KD", "ks_stat"] > 0
    assert out.loc["KD", "n"] == 12
    assert bool(out.loc["KD", "normal_at_0.05"]) == bool(out.loc["KD", "p"] >= 0.05)
    for m in ("IG", "flat"):  # n < 4, constant values
        assert math.isnan(out.loc[m, "p"]) and math.isnan(out.loc[m, "ks_stat"])
        assert pd.isna(out.loc[m, "normal_at_0.05"])


# ---------------------------------------------------------------- validation and output


def test_missing_columns_named():
    frame = runs_frame({"KD": [1.0, 2.0]}).drop(columns=["seed", "subsample_sha"])
    with pytest.raises(InputError, match=r"seed.*subsample_sha"):
        compare(frame)
    with pytest.raises(InputError, match="test_acc"):
        summarize(frame.drop(columns=["test_acc"]))


def test_non_numeric_value_rejected():
    frame = runs_frame({"KD": [1.0, 2.0]})
    frame["test_acc"] = ["high", "low"]
    with pytest.raises(InputError, match="numeric"):
        summarize(frame)
    frame["test_acc"] = [1.0, np.nan]
    with pytest.raises(InputError, match="missing"):
        normality(frame)


def test_markdown_and_write_stats(tmp_path):
    frame = pd.DataFrame({"method": ["KD", "IG"], "n": [5, 3], "p": [5.4321e-5, 0.5], "mean": [91.234, 90.0]})
    md = to_markdown(frame)
    lines = md.splitlines()
    assert lines[0].startswith("| method") and "p" in lines[0] and set(lines[1]) <= set("|-: ")
    assert "5.43e-05" in md and "91.23" in md and "| KD" in md

    x = [90.0, 91.0, 92.0, 93.0, 94.0]
    runs = runs_frame({"Student": x, "KD": [v + 1 for v in x], "IG": [v + 0.5 for v in x]})
    paths = write_stats(runs, tmp_path / "stats", method_order=["Student", "KD", "IG"])
    assert set(paths) == {"summary", "comparisons", "normality", "markdown"}
    assert pd.read_csv(paths["summary"]).method.tolist() == ["Student", "KD", "IG"]
    comps = pd.read_csv(paths["comparisons"])
    assert len(comps) == 3 and "p_holm" in comps.columns
    assert len(pd.read_csv(paths["normality"])) == 3
    text = paths["markdown"].read_text()
    assert "Holm" in text and "Welch" in text and "Lilliefors" in text
    assert "| method" in text and "| Student" in text
    assert not list((tmp_path / "stats").glob(".tmp*"))
