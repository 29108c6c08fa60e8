"""What the paper's own runs could detect: its published means and sds through igkd's power
analysis (igkd.analysis.power), as a Markdown table for docs/reference-numbers.md.

    .venv/bin/python tools/paper_power.py

The numbers below are the paper's (docs/reference-numbers.md), not igkd results. Its runs
were independent (no shared seeds), so every comparison is planned as independent groups
with the pooled sd; each table is one Holm family (each method vs Student and vs KD).
"""

from __future__ import annotations

import math

import pandas as pd

from igkd.analysis.markdown import to_markdown
from igkd.analysis.power import Observed, PowerPlan, plan_comparison

# (runs per method, {method: (mean, sd)}); Monte Carlo sds "about 0.3" are taken as 0.3.
ABLATION = (
    10,
    {
        "Student": (91.18, 0.31),
        "KD": (91.62, 0.44),
        "IG": (91.35, 0.32),
        "KD_IG": (92.02, 0.34),
        "AT": (91.16, 0.32),
        "KD_AT": (91.75, 0.29),
        "IG_AT": (91.46, 0.24),
        "KD_IG_AT": (91.86, 0.28),
    },
)
MONTE_CARLO = (60, {"Student": (90.05, 0.3), "KD": (90.65, 0.3), "KD_IG": (91.29, 0.55), "KD_IG_AT": (90.89, 0.3)})
BASELINES = ("Student", "KD")


def family(runs: int, published: dict, plan: PowerPlan) -> pd.DataFrame:
    """Each method vs Student and vs KD (KD vs Student once), planned at alpha / m."""
    pairs = [(m, b) for b in BASELINES for m in published if m not in BASELINES[: BASELINES.index(b) + 1]]
    rows = []
    for method, baseline in pairs:
        (m1, s1), (m2, s2) = published[method], published[baseline]
        pooled = math.sqrt((s1**2 + s2**2) / 2)  # equal group sizes
        row = plan_comparison(Observed(runs, runs, m1 - m2, pooled), plan, len(pairs))
        rows.append({"comparison": f"{method} vs {baseline}", **row})
    return pd.DataFrame(rows)


def main() -> None:
    plan = PowerPlan()
    shown = {
        "comparison": "comparison",
        "diff": "diff",
        "sd": "pooled sd",
        "detectable_diff_holm": "detectable (α/m)",
        "detectable_diff_alpha": "detectable (0.05)",
        "power_observed": "power",
        "runs_needed_observed": "runs (observed diff)",
        "runs_needed_target": f"runs ({plan.target_diff:g} pp)",
    }
    for name, (runs, published) in (("Ablation", ABLATION), ("Monte Carlo", MONTE_CARLO)):
        table = family(runs, published, plan)
        m = len(table)
        alpha = f"α/m = {plan.alpha:g}/{m} = {plan.holm_alpha(m):.4f}"
        print(f"### {name}: {runs} runs per method, {m} comparisons, {alpha}\n")
        table = table[list(shown)].rename(columns=shown)
        for column in ("runs (observed diff)", f"runs ({plan.target_diff:g} pp)"):
            table[column] = table[column].map(lambda v: "" if not math.isfinite(v) else f"{int(v)}")
        print(to_markdown(table, formats={"power": "{:.2f}"}))
        print()


if __name__ == "__main__":
    main()
