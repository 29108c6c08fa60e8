"""Controls against the methods they control for, with the project's statistics rules.

One family of tests: every control against every comparison method (KD_IG, IG, KD,
Student by default) at the controls' compression factor, plus, for KD and for IG, the
within-class shuffle against the across-class one (`level_pairs`): with the aligned
method vs the within-class shuffle these are the two steps of the three information
levels (image-specific knowledge, then class-level information). The tests are `igkd.analysis.stats.compare`'s
(Welch's t-test, or paired where both groups ran on the same seed/subsample pairs), Holm
and the simultaneous intervals are over exactly this family (the tests with a p-value), and
summaries carry 1 - stats.alpha t-intervals. Every row
says whether its method is a control (column `control`, and '(control)' in labels).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from igkd.analysis.markdown import to_markdown
from igkd.analysis.power import Family, PowerPlan, power_section, power_table
from igkd.analysis.stats import adjust_family, compare, family_size, intervals_text, level_label, summarize
from igkd.io import InputError, atomic_path, write_csv
from igkd.training.methods import INFORMATION_LEVELS, LEVEL_NAMES, control_note, is_control

CONTROL_TAG = " (control)"


def label(method: str) -> str:
    """The name tables and figures show: controls carry '(control)'."""
    return method + CONTROL_TAG if is_control(method) else method


def check_runs(runs: pd.DataFrame, controls: Sequence[str], compare_with: Sequence[str], student: str) -> pd.DataFrame:
    """The runs of the controls and comparison methods of `student` (an id); InputError if one is absent."""
    for column in ("method", "student", "test_acc"):
        if column not in runs.columns:
            raise InputError(f"controls runs table: missing column {column!r}")
    rows = runs[(runs["student"] == student) & runs["method"].isin([*controls, *compare_with])]
    missing = [m for m in [*controls, *compare_with] if m not in set(rows["method"])]
    if missing:
        raise InputError(f"controls runs table: no runs of {missing} of student {student}")
    return rows.reset_index(drop=True)


def control_summary(runs: pd.DataFrame, order: Sequence[str], confidence: float = 0.95) -> pd.DataFrame:
    """Per method: n, mean, sd, t-interval (igkd.analysis.stats.summarize), plus `control` and `label`."""
    out = summarize(runs, confidence=confidence, method_order=order)
    out.insert(1, "control", out["method"].map(is_control))
    out.insert(2, "label", out["method"].map(label))
    return out


def level_pairs(controls: Sequence[str]) -> list[tuple[str, str]]:
    """(within-class shuffle, across-class shuffle) for each part whose two shuffles are both
    among `controls`: the step from class-level information to none."""
    pairs = []
    for _aligned, in_class, across in INFORMATION_LEVELS.values():
        if in_class in controls and across in controls:
            pairs.append((in_class, across))
    return pairs


def control_comparisons(
    runs: pd.DataFrame, controls: Sequence[str], compare_with: Sequence[str], alpha: float = 0.05
) -> pd.DataFrame:
    """Each control vs each comparison method, and each within-class shuffle vs its
    across-class shuffle (`level_pairs`); Holm and simultaneous intervals over these tests only."""
    order = [*compare_with, *controls]
    pairs = {(c, b) for c in controls for b in compare_with} | set(level_pairs(controls))
    baselines = list(dict.fromkeys([*compare_with, *(across for _, across in level_pairs(controls))]))
    comps = compare(runs, baselines=baselines, alpha=alpha, method_order=order)
    wanted = [(m, b) in pairs for m, b in zip(comps["method"], comps["baseline"])]
    comps = comps[wanted].reset_index(drop=True)
    comps = adjust_family(comps, alpha)
    comps.insert(1, "control", comps["method"].map(is_control))
    return comps


def information_levels(summary: pd.DataFrame, comps: pd.DataFrame) -> pd.DataFrame:
    """For KD and for IG, the three levels of teacher information present in `summary`
    (aligned, shuffled within class, shuffled across classes: mean and interval per level)
    and, per step, the tested difference to the level above (diff = lower level − the one
    above it, from `comps`, with its Holm-adjusted p)."""
    rows = []
    for part, methods in INFORMATION_LEVELS.items():
        here = [(level, m) for level, m in zip(LEVEL_NAMES, methods) if m in set(summary["method"])]
        if len(here) < 2:
            continue
        previous = None
        for level, method in here:
            s = summary[summary["method"] == method].iloc[0]
            row = {
                "part": part,
                "rank": LEVEL_NAMES.index(level),
                "level": level,
                "method": method,
                **{k: s[k] for k in ("n", "mean", "ci_low", "ci_high")},
            }
            diff, p_holm = _step(comps, method, previous)
            row.update(vs=previous or "", diff=diff, p_holm=p_holm)
            rows.append(row)
            previous = method
    columns = ["part", "rank", "level", "method", "n", "mean", "ci_low", "ci_high", "vs", "diff", "p_holm"]
    return pd.DataFrame(rows, columns=columns)


def _step(comps: pd.DataFrame, lower: str, upper: str | None) -> tuple[float, float]:
    """(lower − upper, its p_holm) from whichever way round `comps` tested the pair."""
    for method, baseline, sign in ((lower, upper, 1.0), (upper, lower, -1.0)):
        hit = comps[(comps["method"] == method) & (comps["baseline"] == baseline)]
        if upper is not None and len(hit):
            return sign * float(hit["diff"].iloc[0]), float(hit["p_holm"].iloc[0])
    return np.nan, np.nan


LEVELS_TEXT = (
    "For KD and for IG, three levels of what the teacher's output says: aligned (row i is image i's), "
    "shuffled within class (another image of the same class: what the teacher says about the class), "
    "shuffled across classes (any other image, about 9 in 10 of another class). aligned − within class "
    "measures image-specific knowledge; within class − across classes, the class-level information in "
    "the soft targets or maps. diff: this level − the level above it (negative: information lost), "
    "p_holm from the comparisons below."
)


def write_control_stats(
    runs: pd.DataFrame,
    paths: dict[str, str | os.PathLike],
    *,
    controls: Sequence[str],
    compare_with: Sequence[str],
    student: str,
    plan: PowerPlan | None = None,
    costs: pd.DataFrame | None = None,
) -> dict[str, pd.DataFrame]:
    """Write paths['runs'|'summary'|'comparisons'|'levels'] (CSV) and paths['markdown'] atomically;
    the Markdown ends with the controls' power section (`plan`, hours from `costs`)."""
    plan = plan or PowerPlan()
    alpha = plan.alpha
    runs = check_runs(runs, controls, compare_with, student)
    order = [*compare_with, *controls]
    summary = control_summary(runs, order, 1 - alpha)
    comps = control_comparisons(runs, controls, compare_with, alpha)
    levels = information_levels(summary, comps)
    write_csv(paths["runs"], runs)
    write_csv(paths["summary"], summary)
    write_csv(paths["levels"], levels)
    write_csv(paths["comparisons"], comps)
    level = level_label(1 - alpha)
    factor = float(runs["factor"].iloc[0]) if "factor" in runs else float("nan")
    notes = [f"- **{label(m)}**: {control_note(m) or 'not a control'}" for m in controls]
    shown = comps.assign(method=comps["method"].map(label))
    md = "\n".join(
        [
            f"# Is it the knowledge? Controls of {student} (compression factor {factor:.2f})",
            "",
            "A control keeps a method's parts but detaches the teacher's per-image information from "
            "the image. If a method beats Student but not its control, its gain is regularisation, "
            "not knowledge about the image.",
            "",
            *notes,
            "",
            "## Summary",
            "",
            f"All runs per method: mean, sd (ddof=1) and {level} t-interval of the mean; min/max descriptive only.",
            "",
            to_markdown(
                summary.drop(columns="method").rename(columns={"label": "method"})[
                    ["method", "control", *summary.columns[3:]]
                ]
            ),
            "",
            "## Three levels of teacher information",
            "",
            LEVELS_TEXT,
            "",
            to_markdown(levels.drop(columns="rank"))
            if len(levels)
            else "_No part has two of its levels among these runs._",
            "",
            "## Each control vs each comparison method, and each within-class shuffle vs its across-class one",
            "",
            "Welch's t-test on independent runs; paired only where both ran on the same (seed, subsample) "
            f"pairs (column `test`). diff = control − comparison. {intervals_text(alpha, family_size(comps))} "
            "hedges_g: bias-corrected standardized difference.",
            "",
            to_markdown(shown) if len(shown) else "_No comparisons._",
            "",
            power_section(power_table(Family("controls", comps, runs, costs), plan), plan),
        ]
    )
    with atomic_path(paths["markdown"]) as tmp:
        Path(tmp).write_text(md, encoding="utf-8")
    return {"runs": runs, "summary": summary, "comparisons": comps, "levels": levels}
