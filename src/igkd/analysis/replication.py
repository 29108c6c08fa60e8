"""igkd's runs held against the paper's published numbers: one row per number with igkd's
value, its interval, the difference, the tests and a verdict (igkd.analysis.verdict has the
rules), and the paper's headline claims re-tested on igkd's own runs.

igkd's side of a number is every run at its cell (method, student, training fraction), from
whichever enabled experiments trained it: runs tables are pooled and a run trained for two
experiments (run 0 of mobilenetv2-drop5 serves the ablation and the compression sweep)
counts once. The paper's cells are by drop (its MobileNetV2 without `drop` blocks): igkd's
student there is mobilenetv2-drop<drop> (igkd.registry.mobilenet), and the tables name it.
Missing cells give 'not run'; maxima are 'not tested' (a maximum grows with the number of
runs); the inference times are 'not comparable: timing method differs'. Computed only where
the comparison means something (igkd.analysis.paper_numbers.comparability);
igkd.analysis.replication_report writes the report, or the one line saying why not.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as st

from igkd.analysis.paper_numbers import MAX, MEAN, TIME, Claim, PaperNumber, PaperNumbers
from igkd.analysis.stats import compare
from igkd.analysis.verdict import INCONCLUSIVE, Evidence, Sample, holm, prediction, verdict, welch
from igkd.io import InputError

NOT_RUN = "not run"
NOT_TESTED = "not tested"
TIMING = "not comparable: timing method differs"
CELL_KEYS = ["method", "student", "fraction", "run"]  # a run's identity within one campaign

ROW_COLUMNS = [
    "section",
    "quantity",
    "method",
    "student",
    "factor",
    "paper_value",
    "paper_sd",
    "paper_sd_approx",
    "paper_n",
    "igkd_value",
    "igkd_sd",
    "igkd_n",
    "igkd_low",
    "igkd_high",
    "diff",
    "diff_low",
    "diff_high",
    "test",
    "df",
    "p_diff",
    "p_diff_holm",
    "p_tost",
    "p_tost_holm",
    "verdict",
    "note",
]
CLAIM_COLUMNS = [
    "claim",
    "section",
    "method",
    "baseline",
    "student",
    "fraction",
    "test",
    "n_method",
    "n_baseline",
    "diff",
    "diff_ci_low",
    "diff_ci_high",
    "p",
    "p_holm",
    "paper_p_below",
    "direction",
    "verdict",
]
# Where the runs behind each section come from, for the 'not run' note.
SOURCE = {
    "teacher": "train_teacher",
    "ablation": "experiments.ablation (snakemake ablation)",
    "montecarlo": "experiments.montecarlo (snakemake montecarlo)",
    "compression": "experiments.compression (snakemake compression)",
    "imagenet_subset": "external_eval on the ImageNet subset (external_eval.root, no stand-in)",
}


@dataclass(frozen=True)
class ReplicationSettings:
    """config `replication`: the equivalence margin (percentage points) and the level α."""

    margin: float
    alpha: float

    @classmethod
    def from_config(cls, section: Mapping) -> ReplicationSettings:
        return cls(float(section["margin"]), float(section["alpha"]))


@dataclass(frozen=True)
class IgkdResults:
    """igkd's side: its pooled runs (`pool_runs`), its teacher's test accuracy and, where it
    was evaluated on the ImageNet subset, the teacher's accuracy there."""

    runs: pd.DataFrame
    teacher_acc: float | None
    imagenet_teacher_acc: float | None = None


@dataclass(frozen=True)
class Report:
    rows: pd.DataFrame  # ROW_COLUMNS, one per published number
    claims: pd.DataFrame  # CLAIM_COLUMNS, one per claim and cell
    settings: ReplicationSettings
    numbers: PaperNumbers


# --------------------------------------------------------------------------- igkd's runs


def pool_runs(tables: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """The runs tables of several experiments as one, each run once (by its CELL_KEYS)."""
    frames = [t for t in tables if len(t)]
    if not frames:
        return pd.DataFrame(columns=[*CELL_KEYS, "test_acc"])
    runs = pd.concat(frames, ignore_index=True)
    missing = [c for c in [*CELL_KEYS, "test_acc"] if c not in runs.columns]
    if missing:
        raise InputError(f"runs tables: missing column(s) {missing}")
    return runs.drop_duplicates(CELL_KEYS).reset_index(drop=True)


def cell_values(runs: pd.DataFrame, method: str, student: str, fraction: float) -> np.ndarray:
    """test_acc of every igkd run at one cell."""
    at = (runs["method"] == method) & (runs["student"] == student)
    at &= np.isclose(runs["fraction"].astype(float), fraction)
    return runs.loc[at, "test_acc"].to_numpy(float)


# --------------------------------------------------------------------------- one row per number


def _base(number: PaperNumber) -> dict:
    row = dict.fromkeys(ROW_COLUMNS, np.nan)
    row.update(
        section=number.section,
        quantity=number.quantity,
        method=number.method,
        student=number.student,
        factor=number.factor,
        paper_value=number.value,
        paper_sd=number.sd,
        paper_sd_approx=number.sd_approx,
        paper_n=number.n,
        test="",
        verdict=INCONCLUSIVE,
        note="",
    )
    return row


def _igkd_side(row: dict, values: np.ndarray, level: float) -> Sample:
    sample = Sample.of(values)
    row.update(igkd_value=sample.mean, igkd_sd=sample.sd, igkd_n=sample.n)
    if sample.n >= 2:
        half = st.t.ppf((1 + level) / 2, sample.n - 1) * sample.sd / math.sqrt(sample.n)
        row.update(igkd_low=sample.mean - half, igkd_high=sample.mean + half)
    return sample


def _with_evidence(row: dict, evidence: Evidence | None, settings: ReplicationSettings) -> None:
    if evidence is None:
        return
    low, high = evidence.interval(1 - settings.alpha)
    row.update(
        test=evidence.test,
        diff=evidence.diff,
        diff_low=low,
        diff_high=high,
        df=evidence.df,
        p_diff=evidence.p_diff,
        p_tost=evidence.p_tost(settings.margin),
    )


def _row(number: PaperNumber, results: IgkdResults, settings: ReplicationSettings) -> dict:
    row = _base(number)
    if number.quantity == TIME:
        row.update(verdict=TIMING, note="")
        return row
    if number.student is None:  # a teacher: one run here, one in the paper
        acc = results.teacher_acc if number.section == "teacher" else results.imagenet_teacher_acc
        if acc is None:
            row.update(verdict=NOT_RUN, note=f"needs {SOURCE[number.section]}")
        else:
            row.update(igkd_value=acc, igkd_n=1, diff=acc - number.value, note="one teacher each: no spread to test")
        return row
    values = cell_values(results.runs, number.method, number.student, number.fraction)
    if not len(values):
        row.update(verdict=NOT_RUN, note=f"no igkd runs at this cell: {SOURCE[number.section]}")
        return row
    sample = _igkd_side(row, values, 1 - settings.alpha)
    if number.quantity == MAX:
        row.update(
            igkd_value=float(values.max()),
            igkd_low=np.nan,
            igkd_high=np.nan,
            diff=float(values.max()) - number.value,
            verdict=NOT_TESTED,
            note=f"maximum of {sample.n} igkd runs, of {number.n} in the paper: not a test",
        )
        return row
    if number.quantity == MEAN:
        _with_evidence(row, welch(sample, Sample(number.value, number.sd, number.n)), settings)
        notes = ["paper sd approximate ('about')"] if number.sd_approx else []
    else:  # SINGLE: one paper run at a cell where igkd may have several
        _with_evidence(row, prediction(sample, number.value), settings)
        notes = ["paper: one run"]
    if sample.n < 2:
        row["diff"] = sample.mean - number.value
        notes.append("one igkd run: no spread to test")
    row["note"] = "; ".join(notes)
    return row


def compare_numbers(numbers: PaperNumbers, results: IgkdResults, settings: ReplicationSettings) -> pd.DataFrame:
    """One row per published number; Holm over the tested rows, then the verdicts."""
    rows = pd.DataFrame([_row(n, results, settings) for n in numbers.numbers], columns=ROW_COLUMNS)
    rows = rows.astype({"paper_n": "Int64", "igkd_n": "Int64", "paper_sd_approx": bool})
    rows["p_diff_holm"] = holm(rows["p_diff"])
    rows["p_tost_holm"] = holm(rows["p_tost"])
    tested = rows["p_diff"].notna()
    rows.loc[tested, "verdict"] = [
        verdict(d, p, q, settings.alpha)
        for d, p, q in rows.loc[tested, ["diff", "p_diff_holm", "p_tost_holm"]].itertuples(index=False)
    ]
    return rows


# --------------------------------------------------------------------------- headline claims


def _claim_text(claim: Claim) -> str:
    bound = f", p < {claim.p_below:g}" if claim.p_below is not None else ""
    return f"{claim.method} {claim.direction} than {claim.baseline}{bound}"


def _claim_row(claim: Claim, section: str, numbers: PaperNumbers, runs: pd.DataFrame, alpha: float) -> dict:
    student, fraction = numbers.cell(section)
    row = dict.fromkeys(CLAIM_COLUMNS, np.nan)
    row.update(
        claim=_claim_text(claim),
        section=section,
        method=claim.method,
        baseline=claim.baseline,
        student=student,
        fraction=fraction,
        test="",
        paper_p_below=claim.p_below,
        direction="",
        verdict=NOT_RUN,
    )
    at = (runs["student"] == student) & np.isclose(runs["fraction"].astype(float), fraction)
    cell = runs[at & runs["method"].isin([claim.method, claim.baseline])]
    if set(cell["method"]) != {claim.method, claim.baseline}:
        return row
    if "factor" not in cell.columns:
        cell = cell.assign(factor=np.nan)
    tested = compare(cell, baselines=(claim.baseline,), alpha=alpha, method_order=[claim.baseline, claim.method])
    found = tested[(tested["method"] == claim.method) & (tested["baseline"] == claim.baseline)].iloc[0]
    for key in ("test", "n_method", "n_baseline", "diff", "diff_ci_low", "diff_ci_high", "p"):
        row[key] = found[key]
    row["direction"] = "higher" if found["diff"] > 0 else "lower"
    row["verdict"] = INCONCLUSIVE if np.isnan(found["p"]) else ""
    return row


def claim_verdict(row: Mapping, claim_direction: str, alpha: float) -> str:
    """'holds': the claimed direction, Holm p below α and below the paper's bound (if it
    states one); 'weaker than claimed': significant at α but not below that bound;
    'reversed': significant the other way; otherwise 'inconclusive at this n'."""
    p = row["p_holm"]
    if not p < alpha:
        return INCONCLUSIVE
    if row["direction"] != claim_direction:
        return "reversed"
    bound = row["paper_p_below"]
    return "holds" if pd.isna(bound) or p < bound else "weaker than claimed"


def retest_claims(numbers: PaperNumbers, runs: pd.DataFrame, settings: ReplicationSettings) -> pd.DataFrame:
    """Each claim at each of its cells on igkd's runs (igkd.analysis.stats.compare: Welch, or
    paired where the runs share seeds and subsamples), Holm over the table."""
    pairs = [(claim, section) for claim in numbers.claims for section in claim.sections]
    table = pd.DataFrame([_claim_row(c, s, numbers, runs, settings.alpha) for c, s in pairs], columns=CLAIM_COLUMNS)
    table = table.astype({"n_method": "Int64", "n_baseline": "Int64"})
    table["p_holm"] = holm(table["p"])
    for i, (claim, _) in enumerate(pairs):
        if table.at[i, "verdict"] == "":
            table.at[i, "verdict"] = claim_verdict(table.loc[i], claim.direction, settings.alpha)
    return table


def replicate(numbers: PaperNumbers, results: IgkdResults, settings: ReplicationSettings) -> Report:
    return Report(
        compare_numbers(numbers, results, settings), retest_claims(numbers, results.runs, settings), settings, numbers
    )
