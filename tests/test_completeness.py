"""The completeness error's definition (guarded relative error) and its summary statistics."""

import numpy as np
import pytest
import yaml

from igkd.attribution import completeness
from igkd.config import validate_config
from igkd.io import InputError


def test_guarded_relative_error_is_abs_over_floor_near_zero_gain():
    gain = np.array([1e-6, -1e-4, 0.0, 0.5, 2.0, -5.0])
    delta = np.array([0.01, -0.02, 0.03, 0.2, 0.1, -0.5])
    absolute, relative = completeness.errors(delta, gain, floor=1.0)
    np.testing.assert_allclose(absolute, np.abs(delta))
    # |gain| below the floor: abs / floor; at or above it: abs / |gain|
    np.testing.assert_allclose(relative, [0.01, 0.02, 0.03, 0.2, 0.05, 0.1])
    assert np.isfinite(relative).all() and (relative <= absolute / 1.0).all()
    # the unguarded ratio would call a 0.01-logit error on a 1e-6 gain "10,000"
    unguarded = np.abs(delta) / np.maximum(np.abs(gain), 1e-12)
    assert unguarded[0] == pytest.approx(1e4) and relative.max() == pytest.approx(0.2)
    # another floor moves only the floored rows
    _, rel_small = completeness.errors(delta, gain, floor=0.25)
    np.testing.assert_allclose(rel_small, [0.04, 0.08, 0.12, 0.4, 0.05, 0.1])


def test_nan_delta_stays_nan_and_is_left_out_of_the_summary():
    delta = np.array([np.nan, np.nan])
    absolute, relative = completeness.errors(delta, [3.0, 0.0])
    assert np.isnan(absolute).all() and np.isnan(relative).all()
    summary = completeness.summarize(delta, [3.0, 0.0])
    assert summary["rel_delta_n"] == 0 and summary["abs_delta_n"] == 0
    assert all(np.isnan(summary[f"rel_delta_{k}"]) for k in ("median", "p90", "p99", "max", "mean", "within"))
    assert "none" in completeness.format_summary(summary)


@pytest.mark.parametrize("floor", [0.0, -1.0, float("nan")])
def test_floor_must_be_positive(floor):
    with pytest.raises(InputError, match=r"precompute.ig.rel_floor: expected a number > 0"):
        completeness.errors([0.1], [1.0], floor=floor)


def test_distribution_matches_numpy():
    rng = np.random.default_rng(3)
    values = rng.lognormal(-3, 1.5, size=501)
    with_nan = np.concatenate([values, [np.nan, np.inf, np.nan]])
    stats = completeness.distribution(with_nan, tolerance=0.05)
    assert stats["n"] == 501
    assert stats["median"] == pytest.approx(np.median(values))
    assert stats["p90"] == pytest.approx(np.percentile(values, 90))
    assert stats["p99"] == pytest.approx(np.percentile(values, 99))
    assert stats["max"] == pytest.approx(values.max()) and stats["mean"] == pytest.approx(values.mean())
    assert stats["within"] == pytest.approx(np.count_nonzero(values <= 0.05) / 501)
    assert 0 < stats["within"] < 1


def test_summary_and_log_line():
    gain = np.array([0.0, 0.5, 2.0, 4.0, 10.0])
    delta = np.array([0.02, 0.01, -0.2, 0.1, 1.0])
    s = completeness.summarize(delta, gain, floor=1.0, tolerance=0.05)
    rel = np.array([0.02, 0.01, 0.1, 0.025, 0.1])
    assert s["rel_delta_n"] == 5 and s["rel_delta_median"] == pytest.approx(0.025)
    assert s["rel_delta_p90"] == pytest.approx(np.percentile(rel, 90))
    assert s["rel_delta_max"] == pytest.approx(0.1) and s["rel_delta_mean"] == pytest.approx(rel.mean())
    assert s["rel_delta_within"] == pytest.approx(3 / 5)
    assert s["abs_delta_median"] == pytest.approx(0.1) and s["abs_delta_max"] == pytest.approx(1.0)
    assert s["abs_delta_within"] == pytest.approx(2 / 5)  # abs <= tolerance * floor = 0.05 logit
    assert s["rel_delta_floor"] == 1.0 and s["rel_delta_tolerance"] == 0.05
    assert s["rel_delta_floored"] == pytest.approx(2 / 5)
    assert "max(|f_t(x) - f_t(0)|, rel_floor)" in s["completeness_definition"]
    line = completeness.format_summary(s)
    for text in ("median 0.025", "p90 0.1", "max 0.1", "60.0% within 0.05", "floored at 1 logit", "of 5 images"):
        assert text in line, (text, line)


def test_schema_and_config_defaults_are_the_package_defaults(repo):
    schema = yaml.safe_load((repo / "workflow/schemas/config.schema.yaml").read_text())
    ig = schema["properties"]["precompute"]["properties"]["ig"]["properties"]
    assert ig["rel_floor"]["default"] == completeness.DEFAULT_REL_FLOOR
    assert ig["report_tolerance"]["default"] == completeness.DEFAULT_TOLERANCE
    config = yaml.safe_load((repo / "config.yaml").read_text())
    assert config["precompute"]["ig"]["rel_floor"] == completeness.DEFAULT_REL_FLOOR
    del config["precompute"]["ig"]["rel_floor"]
    assert validate_config(config)["precompute"]["ig"]["rel_floor"] == completeness.DEFAULT_REL_FLOOR
    config["precompute"]["ig"]["rel_floor"] = 0
    with pytest.raises(InputError, match=r"precompute.ig.rel_floor: 0 is less than or equal to the minimum of 0"):
        validate_config(config)
