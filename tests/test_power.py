"""igkd.analysis.power against textbook values and statsmodels, its table on runs tables, the
edge cases (one run, zero variance, one method), run costs, the Markdown section and fig_power."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import yaml
from statsmodels.stats.power import TTestIndPower, TTestPower

from igkd.analysis.collect import run_costs
from igkd.analysis.power import (
    Family,
    PowerPlan,
    achieved_power,
    detectable_effect,
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


def test_table_uses_the_sd_the_test_sees_and_holms_strictest_alpha():
    rng = np.random.default_rng(0)
    base = rng.normal(90, 0.4, 10)
    paired = runs_frame({"Student": base, "KD": base + 0.3 + rng.normal(0, 0.1, 10), "IG": rng.normal(90.2, 0.5, 10)})
    table = power_table(_family(paired), PowerPlan())
    pairs = set(table[["method", "baseline"]].itertuples(index=False, name=None))
    assert pairs == {("KD", "Student"), ("IG", "Student"), ("IG", "KD")}
    row = table[(table["method"] == "KD") & (table["baseline"] == "Student")].iloc[0]
    kd = paired.loc[paired["method"] == "KD", "test_acc"].to_numpy()
    d = kd - base
    assert row["test"] == "paired" and row["n_method"] == 10
    assert row["sd"] == pytest.approx(d.std(ddof=1))
    assert row["diff"] == pytest.approx(d.mean())
    assert row["family_size"] == 3 and row["alpha_holm"] == pytest.approx(0.05 / 3)
    effect = TTestPower().solve_power(effect_size=None, nobs=10, alpha=0.05 / 3, power=0.8)
    assert row["detectable_diff_holm"] == pytest.approx(effect * d.std(ddof=1), rel=1e-6)
    assert row["detectable_diff_alpha"] < row["detectable_diff_holm"]
    assert row["runs_needed_target"] == runs_needed(0.5 / row["sd"], 0.05 / 3, 0.8, paired=True)
    assert row["runs_needed_observed"] == runs_needed(row["diff"] / row["sd"], 0.05 / 3, 0.8, paired=True)
    assert row["power_observed"] == pytest.approx(achieved_power(row["diff"] / row["sd"], 10, 10, 0.05 / 3, True))
    assert row["note"] == "no runtime.json wall time: hours unknown"  # no costs given


def test_independent_runs_use_the_pooled_sd():
    x, y = np.array([91.0, 91.4, 90.8, 91.9]), np.array([90.5, 90.9, 90.1, 90.2, 90.8, 91.0])
    runs = runs_frame({"Student": y, "KD": x}, shared=False)
    row = power_table(_family(runs), PowerPlan()).iloc[0]
    pooled = math.sqrt((3 * x.var(ddof=1) + 5 * y.var(ddof=1)) / 8)
    assert row["test"] == "welch"
    assert row["sd"] == pytest.approx(pooled)
    ref = TTestIndPower().solve_power(effect_size=None, nobs1=4, ratio=6 / 4, alpha=0.05, power=0.8)
    assert row["detectable_diff_holm"] == pytest.approx(ref * pooled, rel=1e-6)  # a family of one: alpha/1


def test_one_run_says_why_and_does_not_crash(tmp_path):
    runs = runs_frame({"Student": [90.0], "KD": [90.5]})
    table = power_table(_family(runs), PowerPlan())
    row = table.iloc[0]
    assert "1 paired run(s)" in row["note"]
    assert math.isnan(row["sd"]) and math.isnan(row["detectable_diff_holm"])
    assert pd.isna(row["runs_needed_target"]) and pd.isna(row["hours_target"])
    independent = power_table(_family(runs_frame({"Student": [90.0, 90.4], "KD": [90.5]}, shared=False)), PowerPlan())
    assert independent.iloc[0]["note"] == "n=1 in method: no sd"
    paths = write_stats(runs, tmp_path)
    assert "1 paired run(s): no sd of the differences" in paths["markdown"].read_text()


def test_zero_variance_and_zero_difference_are_explained():
    same = runs_frame({"Student": [90.0, 90.0, 90.0], "KD": [90.5, 90.5, 90.5]}, shared=False)
    row = power_table(_family(same), PowerPlan()).iloc[0]
    assert row["note"] == "zero variance in both groups: no noise estimate"
    assert math.isnan(row["detectable_diff_alpha"])
    tied = runs_frame({"Student": [90.0, 90.4, 90.2], "KD": [90.2, 90.0, 90.4]}, shared=False)
    row = power_table(_family(tied), PowerPlan()).iloc[0]
    assert row["diff"] == pytest.approx(0.0, abs=1e-12)
    assert pd.isna(row["runs_needed_observed"]) and row["runs_needed_target"] > 2
    assert "no observed difference" in row["note"]
    almost = power_table(
        _family(runs_frame({"Student": [90.0, 90.4, 90.2], "KD": [90.0 + 1e-12, 90.4, 90.2]}, shared=False)),
        PowerPlan(),
    )
    assert pd.isna(almost.iloc[0]["runs_needed_observed"])
    assert almost.iloc[0]["note"] == "observed difference too small: more than 1e+09 runs per group"


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
                {"method": "Student", "drop": 1, "run": i, "seconds": s, "device": "cuda:0 (NVIDIA H200)"}
                for i, s in enumerate([60, 70, 80, 1000])
            ),
            *(
                {"method": "KD", "drop": 1, "run": i, "seconds": 90.0, "device": "cuda:0 (NVIDIA H200)"}
                for i in range(4)
            ),
        ]
    )
    row = power_table(_family(runs, costs), PowerPlan()).iloc[0]
    assert row["seconds_baseline"] == 75 and row["seconds_method"] == 90
    assert row["hours_target"] == pytest.approx(row["runs_needed_target"] * 165 / 3600)
    assert row["device"] == "cuda:0 (NVIDIA H200)" and row["hours_unit"] == "GPU-hours"
    no_costs = power_table(_family(runs), PowerPlan()).iloc[0]
    assert no_costs["hours_unit"] == "CPU-hours" and pd.isna(no_costs["hours_target"])
    assert "hours unknown" in no_costs["note"]


def _student_dir(root, method, run, seconds, threads=4):
    folder = root / method / f"run{run}"
    folder.mkdir(parents=True)
    env = {"device": "cpu", "threads": threads, "devices_used": ["cpu"]}
    (folder / "metrics.json").write_text(json.dumps({"method": method, "drop": 5, "run": run, "environment": env}))
    (folder / "runtime.json").write_text(json.dumps({"seconds": seconds, "started": 0, "ended": seconds}))
    return folder / "runtime.json"


def test_run_costs_read_runtime_and_device(tmp_path):
    paths = [_student_dir(tmp_path, "KD", 0, 61.5), _student_dir(tmp_path, "Student", 0, 40)]
    costs = run_costs([str(p) for p in paths])
    assert costs.to_dict("records") == [
        {"method": "KD", "drop": 5, "run": 0, "seconds": 61.5, "device": "cpu (4 threads)"},
        {"method": "Student", "drop": 5, "run": 0, "seconds": 40.0, "device": "cpu (4 threads)"},
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
    fig_power(table, "methods", 1, 2.0, str(tmp_path / "power.pdf"), str(tmp_path / "power.png"))
    assert (tmp_path / "power.pdf").stat().st_size > 1000 and (tmp_path / "power.png").stat().st_size > 1000
    fig_power(table, None, None, 2.0, str(tmp_path / "c.pdf"), str(tmp_path / "c.png"))  # no experiment with tests
    assert (tmp_path / "c.png").stat().st_size > 1000
    with pytest.raises(InputError, match="no comparisons of the methods experiment at drop 7"):
        fig_power(table, "methods", 7, 2.0, str(tmp_path / "x.pdf"), str(tmp_path / "x.png"))
    with pytest.raises(InputError, match=r"missing column\(s\) \['sd'\]"):
        fig_power(table.drop(columns="sd"), "methods", 1, 2.0, str(tmp_path / "x.pdf"), str(tmp_path / "x.png"))
