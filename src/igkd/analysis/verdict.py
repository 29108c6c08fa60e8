"""Is one published number reproduced? The evidence (a difference, its standard error and
degrees of freedom) and the verdict rules, free of any table or file.

diff = igkd − paper, in percentage points. Where the paper gives mean, sd and n, the
evidence is Welch's (unequal variances, Welch–Satterthwaite df; scipy's
``ttest_ind_from_stats``). Where the paper gives a single run, it is a prediction interval:
is that run where a new igkd run would fall? se = s·√(1 + 1/n) from igkd's n >= 2 runs at
the cell, df = n − 1. One igkd run against one paper run has no spread to test against:
no evidence, so no verdict but 'inconclusive at this n'.

Two tests per number, each Holm-corrected across the report (`holm`):

* p_diff: two-sided t-test of diff = 0;
* p_tost: equivalence (two one-sided tests) of H0: |diff| >= margin; it rejects exactly
  when the (1 − 2α) interval of diff lies inside (−margin, +margin).

Verdict, from the Holm-adjusted p-values at level α (`verdict`):

* 'reproduced': p_tost < α — the difference is shown to be within ±margin (even if it is
  also shown not to be zero: a real but negligible difference still reproduces);
* 'lower' / 'higher': not reproduced and p_diff < α — igkd differs, by the sign of diff;
* 'inconclusive at this n': neither; more runs would decide.

A paper single run can rarely be shown equivalent: its own run-to-run noise stays in se
(√(1 + 1/n) >= 1), so t·sd must be below the margin (about 0.3 · 1.7 = 0.5 pp on CIFAR-10).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as st
from statsmodels.stats.multitest import multipletests

REPRODUCED = "reproduced"
LOWER = "lower"
HIGHER = "higher"
INCONCLUSIVE = "inconclusive at this n"


@dataclass(frozen=True)
class Sample:
    """Mean, sd (ddof=1) and size of a group of runs."""

    mean: float
    sd: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Sample:
        x = np.asarray(values, dtype=float)
        return cls(float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else math.nan, len(x))


@dataclass(frozen=True)
class Evidence:
    """diff = igkd − paper with its standard error and degrees of freedom; `p_diff` two-sided."""

    test: str  # welch | prediction
    diff: float
    se: float
    df: float
    p_diff: float

    def p_tost(self, margin: float) -> float:
        """Two one-sided tests of H0: diff <= −margin and H0: diff >= +margin; the larger p."""
        below = st.t.sf((self.diff + margin) / self.se, self.df)
        above = st.t.cdf((self.diff - margin) / self.se, self.df)
        return float(max(below, above))

    def interval(self, level: float) -> tuple[float, float]:
        half = st.t.ppf((1 + level) / 2, self.df) * self.se
        return self.diff - half, self.diff + half


def welch(igkd: Sample, paper: Sample) -> Evidence | None:
    """Welch's test from summary statistics; None where a group has no spread (n < 2)."""
    if igkd.n < 2 or paper.n < 2 or not (igkd.sd > 0 or paper.sd > 0):
        return None
    v1, v2 = igkd.sd**2 / igkd.n, paper.sd**2 / paper.n
    df = (v1 + v2) ** 2 / (v1**2 / (igkd.n - 1) + v2**2 / (paper.n - 1))
    result = st.ttest_ind_from_stats(igkd.mean, igkd.sd, igkd.n, paper.mean, paper.sd, paper.n, equal_var=False)
    return Evidence("welch", igkd.mean - paper.mean, math.sqrt(v1 + v2), df, float(result.pvalue))


def prediction(igkd: Sample, paper_value: float) -> Evidence | None:
    """A paper single run against the prediction interval of one new igkd run; None for
    n < 2 igkd runs or no spread (one run against one run settles nothing)."""
    if igkd.n < 2 or not igkd.sd > 0:
        return None
    se = igkd.sd * math.sqrt(1 + 1 / igkd.n)
    diff = igkd.mean - paper_value
    df = igkd.n - 1
    return Evidence("prediction", diff, se, df, float(2 * st.t.sf(abs(diff) / se, df)))


def holm(p: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values over the non-NaN entries (NaN stays NaN)."""
    p = np.asarray(p, dtype=float)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return out


def verdict(diff: float, p_diff: float, p_tost: float, alpha: float) -> str:
    """The rule above, on Holm-adjusted p-values (NaN: no test, 'inconclusive at this n')."""
    if p_tost < alpha:
        return REPRODUCED
    if p_diff < alpha:
        return LOWER if diff < 0 else HIGHER
    return INCONCLUSIVE
