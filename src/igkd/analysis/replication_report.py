"""The replication report's files: comparison.md (verdict counts, the rules, one table per
section, the claims), comparison.csv and claims.csv; or, where the run cannot be compared
with the paper, the one line saying why (igkd.analysis.replication computes the rows)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from igkd.analysis.markdown import to_markdown
from igkd.analysis.paper_numbers import MAX
from igkd.analysis.replication import Report
from igkd.io import atomic_path, write_csv

TITLES = {
    "teacher": "Teacher",
    "ablation": "Ablation",
    "montecarlo": "Monte Carlo",
    "compression": "Compression sweep",
    "inference": "Inference time",
    "imagenet_subset": "ImageNet subset",
}


def _num(value, fmt: str = "{:.2f}") -> str:
    return "" if value is None or pd.isna(value) else fmt.format(value)


def _interval(low, high) -> str:
    return "" if pd.isna(low) else f"[{low:.2f}, {high:.2f}]"


def _section_table(rows: pd.DataFrame, level: str) -> str:
    paper = [
        _num(v) + (f" ± {'~' if a else ''}{s:.2f}" if not pd.isna(s) else "")
        for v, s, a in rows[["paper_value", "paper_sd", "paper_sd_approx"]].itertuples(index=False)
    ]
    igkd = [
        _num(v) + (f" ± {s:.2f}" if not pd.isna(s) and q != MAX else "")
        for v, s, q in rows[["igkd_value", "igkd_sd", "quantity"]].itertuples(index=False)
    ]
    cells = pd.DataFrame(
        {
            "method": rows["method"],
            "what": rows["quantity"],
            "factor": [_num(f) for f in rows["factor"]],
            "paper": paper,
            "paper n": rows["paper_n"],
            "igkd": igkd,
            "igkd n": rows["igkd_n"],
            f"igkd {level} CI": [_interval(a, b) for a, b in rows[["igkd_low", "igkd_high"]].itertuples(index=False)],
            "diff": [_num(d, "{:+.2f}") for d in rows["diff"]],
            f"diff {level} CI": [_interval(a, b) for a, b in rows[["diff_low", "diff_high"]].itertuples(index=False)],
            "p_diff_holm": rows["p_diff_holm"],
            "p_tost_holm": rows["p_tost_holm"],
            "verdict": rows["verdict"],
            "note": rows["note"],
        }
    )
    return to_markdown(cells)


def _claims_table(claims: pd.DataFrame) -> str:
    shown = claims[["claim", "section", "test", "n_method", "n_baseline", "diff", "p", "p_holm", "verdict"]].copy()
    shown["diff"] = [_num(d, "{:+.2f}") for d in claims["diff"]]
    shown["diff CI"] = [_interval(a, b) for a, b in claims[["diff_ci_low", "diff_ci_high"]].itertuples(index=False)]
    return to_markdown(
        shown[["claim", "section", "test", "n_method", "n_baseline", "diff", "diff CI", "p", "p_holm", "verdict"]]
    )


def markdown(report: Report) -> str:
    """comparison.md: the verdict counts, the rules, one table per section, the claims."""
    rows, s, numbers = report.rows, report.settings, report.numbers
    level = f"{100 * (1 - s.alpha):g} %"
    counts = rows["verdict"].value_counts()
    n_tested = int(rows["p_diff"].notna().sum())
    lines = [
        "# Does igkd reproduce the paper?",
        "",
        f"The paper: {numbers.citation} <{numbers.url}>. Its numbers: `src/igkd/data/paper_numbers.yaml` "
        f"(accuracy: {numbers.units.get('accuracy', '')}; time: {numbers.units.get('time', '')}). "
        "igkd: this run's teacher and students, on CIFAR-10 at the paper's settings.",
        "",
        "**Verdicts:** " + ", ".join(f"{name} {count}" for name, count in counts.items()) + ".",
        "",
        "## How a verdict is reached",
        "",
        f"- diff = igkd − paper, in percentage points; equivalence margin ±{s.margin:g} pp "
        f"(`replication.margin`), level α = {s.alpha:g} (`replication.alpha`); intervals are at {level}.",
        "- Where the paper gives mean, sd and n: Welch's t-test from the summary statistics (test `welch`). "
        "Where it gives one run: is that run where one new igkd run would fall? Prediction interval from "
        "igkd's n >= 2 runs at the cell, se = s·√(1 + 1/n), df = n − 1 (test `prediction`).",
        f"- **reproduced**: the equivalence test (TOST at ±{s.margin:g} pp) rejects: the difference is "
        f"shown to lie within the margin. **lower** / **higher**: not reproduced, and the two-sided test "
        "rejects diff = 0: igkd differs, in that direction. **inconclusive at this n**: neither; more runs "
        "would decide.",
        f"- Multiplicity: {n_tested} numbers are tested. p_diff_holm and p_tost_holm are Holm-adjusted over "
        f"those {n_tested} (each kind its own family) and the verdicts use them, so the chance of any false "
        "'lower'/'higher', or of any false 'reproduced', is at most α. The drawn intervals are not adjusted.",
        "- One igkd run against the paper's one run (a teacher; a compression cell with one run) has no "
        "spread to test against: inconclusive. A single paper run is rarely shown equivalent: its own "
        "run-to-run noise stays in se. Maxima are not tested: a maximum grows with the number of runs. "
        f"Inference times: {numbers.timing_not_comparable}.",
        "",
    ]
    for section, title in TITLES.items():
        part = rows[rows["section"] == section]
        if len(part):
            lines += [f"## {title}", "", _section_table(part, level), ""]
    lines += [
        "## The paper's headline claims, re-tested on igkd's runs",
        "",
        "igkd.analysis.stats.compare at each claim's cell (Welch, or paired where the runs share seeds "
        "and subsamples); p_holm: Holm over this table. holds: the claimed direction with p_holm below α "
        "and below the paper's stated bound; weaker than claimed: significant at α but not below that "
        "bound; reversed: significant the other way.",
        "",
        _claims_table(report.claims) if len(report.claims) else "_No claims._",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- files


@dataclass(frozen=True)
class ReportPaths:
    """compare_paper's files: the rows, the claims and the Markdown report."""

    comparison: str | Path
    claims: str | Path
    markdown: str | Path


def write_report(report: Report, paths: ReportPaths) -> None:
    write_csv(paths.comparison, report.rows)
    write_csv(paths.claims, report.claims)
    with atomic_path(paths.markdown) as tmp:
        tmp.write_text(markdown(report), encoding="utf-8")


def write_not_comparable(reason: str, paths: ReportPaths) -> None:
    """The one line saying why there is no comparison: comparison.md, and one-cell CSVs."""
    for path in (paths.comparison, paths.claims):
        write_csv(path, pd.DataFrame({"verdict": [reason]}))
    with atomic_path(paths.markdown) as tmp:
        tmp.write_text(reason + "\n", encoding="utf-8")
