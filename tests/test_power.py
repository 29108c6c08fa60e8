"""igkd.analysis.power against textbook values and statsmodels, its table on runs tables, the
edge cases (one run, zero variance, one method), run costs, the Markdown section and fig_power."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats as st
from statsmodels.stats.power import TTestIndPower, TTestPower

from igkd.analysis.collect import run_costs
from igkd.analysis.power import (
    POWER_COLUMNS,
    Family,
    Noise,
    PowerPlan,
    achieved_power,
    detectable_effect,
    plan_comparison,
    power_section,
    power_table,
    runs_needed,
    write_power,
)
from igkd.analysis.stats import compare, write_stats
from igkd.config import validate_config
from igkd.io import InputError
from igkd.plots.power import fig_power
from test_stats import runs_frame

# ---------------------------------------------------------------- the distributions


@pytest.mark.parametrize(("effect", "per_group"), [(0.2, 394), (0.5, 64), (0.8, 26)])
def test_runs_needed_matches_cohens_table(effect, per_group):
    """Cohen (1988), Table 2.4.1: two-sided alpha 0.05, power 0.80 -> 393/64/26 per group
    (continuous 392.4/63.8/25.5, so whole runs are 394... statsmodels' ceil)."""
    exact = TTestIndPower().solve_power(effect_size=effect, alpha=0.05, power=0.8, ratio=1)
    assert runs_needed(effect, 0.05, 0.8) == math.ceil(exact) == per_group


@pytest.mark.parametrize("paired", [False, True])
@pytest.mark.parametrize(
    ("effect", "n", "alpha"), [(0.3, 10, 0.05), (0.7, 12, 0.01), (1.2, 5, 0.05 / 13), (0.1, 60, 0.05)]
)
def test_power_equals_statsmodels(effect, n, alpha, paired):
    reference = TTestPower().power(effect, n, alpha) if paired else TTestIndPower().power(effect, n, alpha, ratio=1)
    assert achieved_power(effect, n, n, alpha, paired) == pytest.approx(reference, rel=1e-9)


def test_unequal_groups_and_detectable_effect_equal_statsmodels():
    assert achieved_power(0.9, 10, 7, 0.01) == pytest.approx(TTestIndPower().power(0.9, 10, 0.01, ratio=0.7), rel=1e-9)
    for n1, n2, alpha in [(10, 10, 0.05), (10, 7, 0.01), (60, 60, 0.05 / 5)]:
        ref = TTestIndPower().solve_power(effect_size=None, nobs1=n1, ratio=n2 / n1, alpha=alpha, power=0.8)
        assert detectable_effect(n1, n2, alpha, 0.8) == pytest.approx(ref, rel=1e-6)
    ref = TTestPower().solve_power(effect_size=None, nobs=8, alpha=0.05, power=0.9)
    assert detectable_effect(8, 8, 0.05, 0.9, paired=True) == pytest.approx(ref, rel=1e-6)


@pytest.mark.parametrize("paired", [False, True])
def test_runs_needed_is_the_smallest_whole_number_of_runs_with_the_power(paired):
    for effect in (0.15, 0.4, 1.0, 2.5):
        n = int(runs_needed(effect, 0.01, 0.9, paired))
        assert achieved_power(effect, n, n, 0.01, paired) >= 0.9
        assert n == 2 or achieved_power(effect, n - 1, n - 1, 0.01, paired) < 0.9


def test_huge_effects_need_two_runs_where_statsmodels_gives_up():
    """statsmodels 0.15's power is NaN at this noncentrality, so its solver cannot answer;
    the scipy evaluation can, and two runs per group suffice."""
    assert math.isnan(TTestIndPower().power(20, 2, 0.05, ratio=1))
    assert runs_needed(20, 0.05, 0.8) == 2
    assert achieved_power(20, 2, 2, 0.05) > 0.99


def test_zero_and_unreachable_effects_need_infinitely_many_runs():
    assert runs_needed(0.0, 0.05, 0.8) == math.inf
    assert runs_needed(1e-6, 0.05, 0.8) == math.inf  # beyond a billion runs


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"target_diff": 0}, "stats.power.target_diff"),
        ({"power": 1.0}, "stats.power.power"),
        ({"alpha": 0}, "stats.alpha"),
    ],
)
def test_a_bad_plan_is_a_one_line_error_naming_the_key(kwargs, key):
    with pytest.raises(InputError, match=key):
        PowerPlan(**kwargs)


def test_config_schema_checks_the_stats_keys(repo):
    config = yaml.safe_load((repo / "config.yaml").read_text())
    assert PowerPlan.from_config(validate_config(config)["stats"]) == PowerPlan(0.5, 0.8, 0.05)
    config["stats"]["power"]["power"] = 1.5
    with pytest.raises(InputError, match="stats.power.power"):
        validate_config(config)


# ---------------------------------------------------------------- the table


def _family(runs: pd.DataFrame, costs: pd.DataFrame | None = None) -> Family:
    return Family("methods", compare(runs), runs, costs)


def _differences(runs: pd.DataFrame, method: str, baseline: str) -> np.ndarray:
    """Per-pair differences of two methods in a runs_frame with shared seeds (same order)."""
    values = runs.set_index(["method", "run"])["test_acc"]
    return values[method].sort_index().to_numpy() - values[baseline].sort_index().to_numpy()


def test_paired_rows_plan_from_the_differences_pooled_over_the_family():
    """sd_pooled² = Σ (n_k − 1)·s_dk² / Σ (n_k − 1) over the family's paired comparisons, df
    = Σ (n_k − 1), the upper bound s·√(df / χ²_alpha(df)); detectable differences and runs
    needed use it (statsmodels' TTestPower cross-checks the detectable one)."""
    rng = np.random.default_rng(0)
    base = rng.normal(90, 0.4, 10)
    paired = runs_frame({"Student": base, "KD": base + 0.3 + rng.normal(0, 0.1, 10), "IG": rng.normal(90.2, 0.5, 8)})
    paired = paired[~((paired["method"] != "IG") & (paired["run"] >= 8))]  # 8 runs each
    paired = pd.concat(
        [paired, runs_frame({"Student": base, "KD": base + 0.2 + rng.normal(0, 0.2, 10)}, student="mobilenetv2-drop2")]
    )
    table = power_table(_family(paired), PowerPlan())
    assert len(table) == 4 and (table["test"] == "paired").all()
    d = [
        _differences(paired[paired["student"] == "mobilenetv2-drop1"], m, b)
        for m, b in (("KD", "Student"), ("IG", "Student"), ("IG", "KD"))
    ]
    d.append(_differences(paired[paired["student"] == "mobilenetv2-drop2"], "KD", "Student"))
    df = sum(len(x) - 1 for x in d)
    pooled = math.sqrt(sum((len(x) - 1) * x.var(ddof=1) for x in d) / df)
    upper = pooled * math.sqrt(df / st.chi2.ppf(0.05, df))
    assert df == 3 * 7 + 9
    assert table["sd_pooled"].to_numpy() == pytest.approx(pooled) and (table["sd_df"] == df).all()
    assert table["sd_upper"].to_numpy() == pytest.approx(upper) and (table["sd_upper_level"] == 0.95).all()
    row = table[
        (table["method"] == "KD") & (table["baseline"] == "Student") & (table["student"] == "mobilenetv2-drop1")
    ].iloc[0]
    assert row["sd_comparison"] == pytest.approx(d[0].std(ddof=1))  # its own sd: a description only
    assert row["diff"] == pytest.approx(d[0].mean())
    assert row["family_size"] == 4 and row["alpha_holm"] == pytest.approx(0.05 / 4)
    effect = TTestPower().solve_power(effect_size=None, nobs=8, alpha=0.05 / 4, power=0.8)
    assert row["detectable_diff_holm"] == pytest.approx(effect * pooled, rel=1e-6)
    assert row["detectable_diff_holm_upper"] == pytest.approx(effect * upper, rel=1e-6)
    assert row["detectable_diff_alpha"] < row["detectable_diff_holm"] < row["detectable_diff_holm_upper"]
    assert row["runs_needed_target"] == runs_needed(0.5 / pooled, 0.05 / 4, 0.8, paired=True)
    assert row["runs_needed_target_upper"] == runs_needed(0.5 / upper, 0.05 / 4, 0.8, paired=True)
    assert (table["runs_needed_target_upper"] >= table["runs_needed_target"]).all()
    assert row["note"] == "no runtime.json wall time: hours unknown"  # no costs given


def test_welch_rows_pool_the_within_method_variance_each_group_once():
    x, y = np.array([91.0, 91.4, 90.8, 91.9]), np.array([90.5, 90.9, 90.1, 90.2, 90.8, 91.0])
    z = np.array([91.5, 90.7, 91.1])
    runs = runs_frame({"Student": y, "KD": x, "IG": z}, shared=False)
    table = power_table(_family(runs), PowerPlan())
    assert len(table) == 3 and (table["test"] == "welch").all()  # KD, IG vs Student; IG vs KD
    df = 3 + 5 + 2  # Student and KD are in two comparisons each, counted once
    pooled = math.sqrt((3 * x.var(ddof=1) + 5 * y.var(ddof=1) + 2 * z.var(ddof=1)) / df)
    assert (table["sd_df"] == df).all() and table["sd_pooled"].to_numpy() == pytest.approx(pooled)
    assert table["sd_upper"].to_numpy() == pytest.approx(pooled * math.sqrt(df / st.chi2.ppf(0.05, df)))
    row = table[(table["method"] == "KD") & (table["baseline"] == "Student")].iloc[0]
    assert row["sd_comparison"] == pytest.approx(math.sqrt((3 * x.var(ddof=1) + 5 * y.var(ddof=1)) / 8))
    ref = TTestIndPower().solve_power(effect_size=None, nobs1=4, ratio=6 / 4, alpha=0.05 / 3, power=0.8)
    assert row["detectable_diff_holm"] == pytest.approx(ref * pooled, rel=1e-6)


def test_the_holm_family_is_the_comparisons_with_a_p_value():
    """A method with one run gets no p-value: compare leaves it out of Holm, and so must the
    plan (m = 3, not 5); it is still planned, from the family's pooled sd."""
    rng = np.random.default_rng(3)
    groups = {"Student": rng.normal(90, 0.4, 6), "KD": rng.normal(90.4, 0.4, 6), "IG": rng.normal(90.2, 0.4, 6)}
    runs = runs_frame({**groups, "AT": [90.1]}, shared=False)
    comps = compare(runs)
    assert len(comps) == 5 and comps["p"].notna().sum() == 3
    table = power_table(_family(runs), PowerPlan())
    assert (table["family_size"] == 3).all() and table["alpha_holm"].to_numpy() == pytest.approx(0.05 / 3)
    lone = table[(table["method"] == "AT") & (table["baseline"] == "Student")].iloc[0]
    assert lone["note"].startswith("not tested (no p-value): outside the Holm family")
    assert "n=1: these runs detect nothing" in lone["note"] and math.isnan(lone["detectable_diff_holm"])
    assert lone["runs_needed_target"] == table["runs_needed_target"].iloc[0] > 2  # planned from the pooled sd
    assert table["sd_df"].iloc[0] == 3 * 5  # the three tested groups, each once; AT's one run adds nothing
    md = power_section(table, PowerPlan())
    assert "α/m = 0.05/3" in md and "the 3 comparisons with a p-value" in md


def test_a_two_run_pilot_shows_how_uncertain_its_plan_is():
    runs = runs_frame({"Student": [90.0, 90.4], "KD": [90.3, 90.9]})  # one paired comparison, 2 pairs: df 1
    row = power_table(_family(runs), PowerPlan()).iloc[0]
    assert row["sd_df"] == 1 and row["sd_pooled"] == pytest.approx(math.sqrt(0.02))
    upper = math.sqrt(0.02 / st.chi2.ppf(0.05, 1))  # ≈ 16 times the estimate
    assert row["sd_upper"] == pytest.approx(upper)
    assert row["runs_needed_target"] == runs_needed(0.5 / math.sqrt(0.02), 0.05, 0.8, paired=True) == 3
    assert row["runs_needed_target_upper"] == runs_needed(0.5 / upper, 0.05, 0.8, paired=True) > 10 * 3


def test_no_observed_power_anywhere(tmp_path):
    """Power at the observed difference is a transform of p: not in power.csv, stats.md or
    controls' section, in no form (power, runs or hours for the observed difference)."""
    rng = np.random.default_rng(5)
    runs = runs_frame({"Student": rng.normal(90, 0.4, 5), "KD": rng.normal(90.5, 0.4, 5)})
    table = write_power([_family(runs)], PowerPlan(), tmp_path / "power.csv")
    columns = pd.read_csv(tmp_path / "power.csv").columns
    assert not [c for c in columns if "observed" in c] and "power_observed" not in table.columns
    assert set(columns) == set(POWER_COLUMNS)
    md = write_stats(runs, tmp_path / "stats")["markdown"].read_text()
    section = md[md.index("## Power and cost") :]
    assert "runs (observed)" not in section and "| power" not in section


def test_one_run_says_why_and_does_not_crash(tmp_path):
    runs = runs_frame({"Student": [90.0], "KD": [90.5]})
    table = power_table(_family(runs), PowerPlan())
    row = table.iloc[0]
    assert "no tested paired comparison in the family with 2+ runs" in row["note"]
    assert math.isnan(row["sd_comparison"]) and math.isnan(row["sd_pooled"]) and row["sd_df"] == 0
    assert math.isnan(row["detectable_diff_holm"]) and pd.isna(row["runs_needed_target"])
    assert pd.isna(row["hours_target"])
    paths = write_stats(runs, tmp_path)
    assert "no pooled sd of per-pair differences" in paths["markdown"].read_text()


def test_zero_variance_is_explained():
    same = runs_frame({"Student": [90.0, 90.0, 90.0], "KD": [90.5, 90.5, 90.5]}, shared=False)
    row = power_table(_family(same), PowerPlan()).iloc[0]  # untested (no variance): no pooled sd either
    assert row["note"].startswith("not tested (no p-value)") and "no pooled sd of within-method runs" in row["note"]
    noise = Noise.pooled([np.array([90.0, 90.0]), np.array([91.0, 91.0])])
    assert noise == Noise(0.0, 2)
    planned = plan_comparison(2, 2, False, noise, PowerPlan(), 1)
    assert planned["note"] == "zero variance of the family's within-method runs: no noise estimate"
    assert math.isnan(planned["detectable_diff_alpha"]) and math.isnan(planned["runs_needed_target"])


def test_a_single_method_has_no_comparisons(tmp_path):
    runs = runs_frame({"KD_IG": [91.0, 91.3, 90.9]})
    table = write_power([_family(runs)], PowerPlan(), tmp_path / "power.csv")
    assert table.empty
    assert pd.read_csv(tmp_path / "power.csv").columns[0] == "family"
    assert "No comparisons" in power_section(table, PowerPlan())
    assert "No comparisons" in write_stats(runs, tmp_path / "stats")["markdown"].read_text()


def test_hours_are_runs_times_the_median_run_time_on_its_device():
    rng = np.random.default_rng(1)
    runs = runs_frame({"Student": rng.normal(90, 0.4, 4), "KD": rng.normal(90.4, 0.4, 4)})
    costs = pd.DataFrame(
        [
            *(
                {
                    "method": "Student",
                    "student": "mobilenetv2-drop1",
                    "run": i,
                    "seconds": s,
                    "device": "cuda:0 (NVIDIA H200)",
                }
                for i, s in enumerate([60, 70, 80, 1000])
            ),
            *(
                {
                    "method": "KD",
                    "student": "mobilenetv2-drop1",
                    "run": i,
                    "seconds": 90.0,
                    "device": "cuda:0 (NVIDIA H200)",
                }
                for i in range(4)
            ),
        ]
    )
    row = power_table(_family(runs, costs), PowerPlan()).iloc[0]
    assert row["seconds_baseline"] == 75 and row["seconds_method"] == 90
    assert row["hours_target"] == pytest.approx(row["runs_needed_target"] * 165 / 3600)
    assert row["hours_target_upper"] == pytest.approx(row["runs_needed_target_upper"] * 165 / 3600)
    assert row["device"] == "cuda:0 (NVIDIA H200)" and row["hours_unit"] == "GPU-hours"
    no_costs = power_table(_family(runs), PowerPlan()).iloc[0]
    assert no_costs["hours_unit"] == "CPU-hours" and pd.isna(no_costs["hours_target"])
    assert "hours unknown" in no_costs["note"]


def _student_dir(root, method, run, seconds, threads=4):
    folder = root / method / f"run{run}"
    folder.mkdir(parents=True)
    env = {"device": "cpu", "threads": threads, "devices_used": ["cpu"]}
    (folder / "metrics.json").write_text(
        json.dumps({"method": method, "student": "mobilenetv2-drop5", "run": run, "environment": env})
    )
    (folder / "runtime.json").write_text(json.dumps({"seconds": seconds, "started": 0, "ended": seconds}))
    return folder / "runtime.json"


def test_run_costs_read_runtime_and_device(tmp_path):
    paths = [_student_dir(tmp_path, "KD", 0, 61.5), _student_dir(tmp_path, "Student", 0, 40)]
    costs = run_costs([str(p) for p in paths])
    assert costs.to_dict("records") == [
        {"method": "KD", "student": "mobilenetv2-drop5", "run": 0, "seconds": 61.5, "device": "cpu (4 threads)"},
        {"method": "Student", "student": "mobilenetv2-drop5", "run": 0, "seconds": 40.0, "device": "cpu (4 threads)"},
    ]
    paths[0].write_text(json.dumps({"seconds": "a minute"}))
    with pytest.raises(InputError, match=r"KD/run0/runtime.json: key 'seconds'"):
        run_costs([str(p) for p in paths])


# ---------------------------------------------------------------- the figure


def test_fig_power_draws_each_family_and_lists_what_it_cannot(tmp_path):
    rng = np.random.default_rng(2)
    runs = runs_frame(
        {"Student": rng.normal(90, 0.4, 5), "KD": rng.normal(90.4, 0.4, 5), "IG": rng.normal(90.1, 0.4, 5)}
    )
    one = runs_frame({"IG@random": [90.0], "IG": [90.2]})
    table = write_power(
        [_family(runs), Family("controls", compare(one, baselines=["IG"]), one)], PowerPlan(), tmp_path / "p.csv"
    )
    table = pd.read_csv(tmp_path / "p.csv", keep_default_na=False, na_values=[""])
    fig_power(table, "methods", "mobilenetv2-drop1", 2.0, str(tmp_path / "power.pdf"), str(tmp_path / "power.png"))
    assert (tmp_path / "power.pdf").stat().st_size > 1000 and (tmp_path / "power.png").stat().st_size > 1000
    fig_power(table, None, None, 2.0, str(tmp_path / "c.pdf"), str(tmp_path / "c.png"))  # no experiment with tests
    assert (tmp_path / "c.png").stat().st_size > 1000
    with pytest.raises(InputError, match="no comparisons of the methods experiment of student mobilenetv2-drop7"):
        fig_power(table, "methods", "mobilenetv2-drop7", 2.0, str(tmp_path / "x.pdf"), str(tmp_path / "x.png"))
    with pytest.raises(InputError, match=r"missing column\(s\) \['sd_pooled'\]"):
        fig_power(
            table.drop(columns="sd_pooled"),
            "methods",
            "mobilenetv2-drop1",
            2.0,
            str(tmp_path / "x.pdf"),
            str(tmp_path / "x.png"),
        )


def test_fig_power_draws_the_pooled_sd_and_its_bound_at_the_configured_level(tmp_path, monkeypatch):
    """One curve per test kind at the pooled sd, one at its upper bound; the bound's level is
    1 - stats.alpha (alpha 0.1: 90 %), named in the title and the legend, never a fixed 95 %."""
    import igkd.plots.power as plot

    rng = np.random.default_rng(6)
    base = rng.normal(90, 0.4, 4)
    runs = runs_frame({"Student": base, "KD": base + rng.normal(0.3, 0.2, 4), "IG": base + rng.normal(0.1, 0.2, 4)})
    plan = PowerPlan(alpha=0.1)
    table = write_power([Family("methods", compare(runs, alpha=0.1), runs)], plan, tmp_path / "p.csv")
    seen = {}

    def keep(fig, pdf, png):
        seen["title"] = fig._suptitle.get_text()
        seen["labels"] = fig.axes[0].get_legend_handles_labels()[1]
        seen["lines"] = len(fig.axes[0].lines)
        seen["panel"] = fig.axes[0].get_title()

    monkeypatch.setattr(plot, "save_figure", keep)
    plot.fig_power(table, "methods", "mobilenetv2-drop1", 2.0, str(tmp_path / "a.pdf"), str(tmp_path / "a.png"))
    assert seen["panel"].startswith("(a) methods, mobilenetv2-drop1 (1.50x): α/m = ")
    sd, upper, df = table[["sd_pooled", "sd_upper", "sd_df"]].iloc[0]
    assert "one-sided 90 % upper confidence bound" in seen["title"] and "95 %" not in seen["title"]
    assert seen["labels"] == [
        f"paired, 3 comparison(s): pooled sd of per-pair differences {sd:.2g}",
        f"paired: at its 90 % upper bound {upper:.2g} (df {int(df)})",
    ]
    assert seen["lines"] == 2 + 2  # the two curves, the runs-now and target lines
