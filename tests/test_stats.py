"""Tests for igkd.analysis.stats against hand-worked numbers (formulas written out here)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st
from statsmodels.stats.diagnostic import lilliefors

from igkd.analysis.stats import compare, normality, summarize, to_markdown, write_stats
from igkd.analysis.students import sort_students, student_label
from igkd.io import InputError

T_0975_DF4 = 2.7764451051977987  # t quantile 0.975 with 4 df (tables)


def runs_frame(groups, student="mobilenetv2-drop1", factor=1.5, shared=True):
    """groups: {method: values}. shared=True gives every method seeds 0..n-1 and sha 's<i>';
    shared=False gives each method its own seeds/subsamples (independent runs)."""
    rows = []
    for k, (method, values) in enumerate(groups.items()):
        for i, v in enumerate(values):
            seed = i if shared else 100 * (k + 1) + i
            rows.append(
                dict(
                    method=method,
                    student=student,
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
        "student",
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
        "ci_level",
    ]
    assert (out["ci_level"] == 0.95).all()


def test_summary_confidence_and_order():
    x = [90.0, 91.0, 92.0, 94.0, 93.0]
    frame = pd.concat(
        [
            runs_frame({"zeta": x, "KD": x, "Student": x, "alpha": x}, student="mobilenetv2-drop2", factor=2.0),
            runs_frame({"KD": x, "Student": x}, student="mobilenetv2-drop1", factor=1.5),
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


def test_students_sort_by_registry_family_then_size_not_as_text():
    """igkd.analysis.students: registered families in registry order and by size; an
    unregistered (plugin) family after them; what is no id (timing's "teacher") last."""
    ids = ["teacher", "resnet-depth8", "myplugin-size2", "mobilenetv2-drop11", "mobilenetv2-drop3"]
    order = ["mobilenetv2-drop3", "mobilenetv2-drop11", "resnet-depth8", "myplugin-size2", "teacher"]
    assert sort_students(ids) == order
    assert student_label("mobilenetv2-drop5", 4.1234) == "mobilenetv2-drop5 (4.12x)"
    assert student_label("mobilenetv2-drop5", float("nan")) == "mobilenetv2-drop5"
    # tables: a tie in factor goes by that order too (drop11 sorts before drop3 as text)
    x = [90.0, 91.0, 92.0]
    frame = pd.concat(
        runs_frame({"KD": x}, student=s, factor=2.0)
        for s in ("resnet-depth8", "mobilenetv2-drop11", "mobilenetv2-drop3")
    )
    assert list(summarize(frame)["student"]) == order[:3]


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


def test_two_pairs_have_a_test_but_no_effect_size():
    """At 2 pairs (df 1) Hedges' J is 0, so g would print 0.00 ("no effect") for any
    difference: it is left empty, while the t-test itself is defined."""
    frame = runs_frame({"IG": [10.0, 12.5], "Student": [9.0, 10.0]})
    row = compare(frame, baselines=("Student",)).iloc[0]
    assert row.test == "paired" and row.df == 1 and 0 < row.p < 1
    assert math.isnan(row.hedges_g)


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
        student="mobilenetv2-drop1",
        factor=1.5,
        shared=False,
    )
    g2 = runs_frame(
        {"Student": base, "C": [91.0, 91.0, 92.5, 94.0, 93.0]}, student="mobilenetv2-drop2", factor=2.0, shared=False
    )
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


def test_simultaneous_intervals_are_bonferroni_t_intervals_over_the_tested_family():
    """diff_sci_low/high = diff ± t_{1-alpha/(2m), df}·se with m the comparisons that have a
    p-value (the one-run group is not in the family); they contain the unadjusted intervals."""
    rng = np.random.default_rng(4)
    base = rng.normal(90, 0.5, 6)
    paired = runs_frame({"Student": base, "KD": base + rng.normal(0.4, 0.3, 6), "IG": rng.normal(90.3, 0.5, 6)})
    independent = runs_frame(
        {"Student": rng.normal(88, 0.6, 5), "KD": rng.normal(88.5, 0.4, 7), "lone": [89.0]},
        student="mobilenetv2-drop2",
        factor=2.0,
        shared=False,
    )
    alpha = 0.1
    out = compare(pd.concat([paired, independent]), alpha=alpha)
    ok = out[out["p"].notna()]
    m = len(ok)
    assert m == 4 and len(out) == 6  # lone vs Student and lone vs KD have no p-value
    for row in ok.itertuples():
        kd = (row.student == "mobilenetv2-drop1") and row.method == "KD" and row.baseline == "Student"
        if kd:  # paired: t-interval of the mean per-pair difference
            d = paired.loc[paired.method == "KD", "test_acc"].to_numpy() - base
            se, df = d.std(ddof=1) / math.sqrt(len(d)), len(d) - 1
            assert row.test == "paired"
        else:
            se, df = abs(row.diff / row.t), row.df
        half = st.t.ppf(1 - alpha / (2 * m), df) * se
        assert (row.diff_sci_low, row.diff_sci_high) == pytest.approx((row.diff - half, row.diff + half))
        assert row.diff_sci_low < row.diff_ci_low < row.diff_ci_high < row.diff_sci_high
        unadjusted = st.t.ppf(1 - alpha / 2, df) * se
        assert row.diff_ci_high - row.diff_ci_low == pytest.approx(2 * unadjusted)
        if row.diff_sci_low > 0 or row.diff_sci_high < 0:  # excludes 0 -> p < alpha/m -> Holm rejects
            assert row.reject_holm
    lone = out[out.method == "lone"]
    assert lone["diff_sci_low"].isna().all() and lone["diff_sci_high"].isna().all()


def test_stats_md_labels_unadjusted_and_simultaneous_intervals(tmp_path):
    from igkd.analysis.power import PowerPlan

    x = [90.0, 91.0, 92.0, 93.0, 94.0]
    runs = runs_frame({"Student": x, "KD": [v + 1 for v in x], "IG": [v + 0.5 for v in x]}, shared=False)
    text = write_stats(runs, tmp_path, plan=PowerPlan(alpha=0.1))["markdown"].read_text()
    assert "diff_ci_low/high: the unadjusted 90 % interval" in text
    assert "diff_sci_low/high: simultaneous 96.67 % (Bonferroni, 1 − α/m)" in text  # 1 - 0.1/3
    assert "Holm over the 3 tests" in text and "95 %" not in text


# ---------------------------------------------------------------- normality


def test_lilliefors_on_groups_without_a_comparison():
    rng = np.random.default_rng(0)
    frame = runs_frame({"A": rng.normal(90, 1, 12), "IG": [1.0, 2.0, 3.0], "flat": [5.0] * 6})
    out = normality(frame).set_index("method")  # no baseline: each group described, no test assumes it
    assert (out["test"] == "none").all() and out["baseline"].isna().all()
    assert out.loc["A", "tested"] == "group A"
    assert 0 < out.loc["A", "p"] <= 1 and out.loc["A", "ks_stat"] > 0
    assert out.loc["A", "n"] == 12
    assert bool(out.loc["A", "normal_at_0.05"]) == bool(out.loc["A", "p"] >= 0.05)
    for m in ("IG", "flat"):  # n < 4, constant values
        assert math.isnan(out.loc[m, "p"]) and math.isnan(out.loc[m, "ks_stat"])
        assert pd.isna(out.loc[m, "normal_at_0.05"])


def test_normality_tests_the_paired_differences_not_the_groups():
    """Student is bimodal (clearly not normal) and KD = Student + normal differences: the
    paired test assumes normal differences, and those are what is tested for it; the groups,
    which no test here assumes normal, are described apart."""
    n = 20
    student = np.r_[np.full(n // 2, 80.0), np.full(n // 2, 90.0)] + np.linspace(0, 0.1, n)
    differences = 0.5 + 0.2 * st.norm.ppf((np.arange(n) + 0.5) / n)[np.random.default_rng(1).permutation(n)]
    paired = runs_frame({"Student": student, "KD": student + differences})
    out = normality(paired)
    row = out[out["tested"] == "differences KD - Student"].iloc[0]
    assert (row["method"], row["baseline"], row["test"], row["n"]) == ("KD", "Student", "paired", n)
    ks, p = lilliefors(differences, dist="norm")
    assert (row["ks_stat"], row["p"]) == pytest.approx((ks, p)) and row["normal_at_0.05"]
    groups = out[out["test"] == "none"].set_index("tested")
    assert sorted(groups.index) == ["group KD", "group Student"]
    assert groups.loc["group Student", "p"] < 0.01 and not groups.loc["group Student", "normal_at_0.05"]
    # the same values on independent runs: Welch assumes normal groups, so each is tested for it
    welch = normality(runs_frame({"Student": student, "KD": student + differences}, shared=False))
    assert list(welch["tested"]) == ["group KD", "group Student"] and (welch["test"] == "welch").all()
    assert (welch["baseline"] == "Student").all() and not welch["normal_at_0.05"].any()


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
    norm = pd.read_csv(paths["normality"])
    assert len(norm) == 3 + 3  # 3 paired comparisons' differences + the 3 groups described
    assert "differences KD - Student" in set(norm["tested"])
    text = paths["markdown"].read_text()
    assert "Holm" in text and "Welch" in text and "Lilliefors" in text
    assert "| method" in text and "| Student" in text
    assert not list((tmp_path / "stats").glob(".tmp*"))
