"""What the paper's own runs could detect: its published means and sds through igkd's power
analysis (igkd.analysis.power), as Markdown for docs/power.md.

    .venv/bin/python tools/paper_power.py

The numbers below are the paper's (docs/reference-numbers.md), not igkd results. Its runs
were independent (no shared seeds), so each table is planned as independent groups; each is
one Holm family (each method vs Student and vs KD), and, as igkd does for its own runs, the
sd is pooled over the family's method groups, each counted once (df = Σ (runs − 1)).
"""

from __future__ import annotations

import math

import pandas as pd

from igkd.analysis.markdown import to_markdown
from igkd.analysis.power import Noise, PowerPlan, plan_comparison

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


def pairs(published: dict) -> list[tuple[str, str]]:
    """Each method vs Student and vs KD (KD vs Student once)."""
    return [(m, b) for b in BASELINES for m in published if m not in BASELINES[: BASELINES.index(b) + 1]]


def family(runs: int, published: dict, plan: PowerPlan) -> dict:
    """The family's plan: pooled sd of its groups, its upper bound, detectable differences
    and runs needed for plan.target_diff, at alpha / m."""
    noise = Noise.from_variances([sd**2 for _, sd in published.values()], [runs - 1] * len(published))
    m = len(pairs(published))
    return {"m": m, **plan_comparison(runs, runs, False, noise, plan, m)}


def main() -> None:
    plan = PowerPlan()
    level = f"{100 * plan.confidence:g} %"
    target = f"{plan.target_diff:g} pp"
    shown = {
        "family": "family",
        "sd_pooled": "pooled sd",
        "sd_df": "df",
        "sd_upper": f"{level} upper sd",
        "detectable_diff_holm": "detectable (α/m)",
        "detectable_diff_holm_upper": "detectable (α/m, upper sd)",
        "detectable_diff_alpha": f"detectable ({plan.alpha:g})",
        "runs_needed_target": f"runs ({target})",
        "runs_needed_target_upper": f"runs ({target}, upper sd)",
    }
    rows, diffs = [], []
    for name, (runs, published) in (("Ablation", ABLATION), ("Monte Carlo", MONTE_CARLO)):
        row = family(runs, published, plan)
        alpha = f"{plan.alpha:g}/{row['m']} = {plan.holm_alpha(row['m']):.4f}"
        rows.append({**row, "family": f"{name}: {runs} runs, m = {row['m']}, α/m = {alpha}"})
        listed = ", ".join(f"{m} vs {b} {published[m][0] - published[b][0]:+.2f}" for m, b in pairs(published))
        diffs.append(f"- {name}: {listed}")
    table = pd.DataFrame(rows)[list(shown)].rename(columns=shown)
    for column in (f"runs ({target})", f"runs ({target}, upper sd)"):
        table[column] = table[column].map(lambda v: "" if not math.isfinite(v) else f"{int(v)}")
    print(to_markdown(table))
    print("\nPublished differences (method − baseline, pp):\n")
    print("\n".join(diffs))


if __name__ == "__main__":
    main()
