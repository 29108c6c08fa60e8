"""The plan as a plain-text table or as JSON (the same numbers in both)."""

from __future__ import annotations

from igkd.plan.build import Plan
from igkd.plan.calibration import provenance
from igkd.plan.summary import Row

UNITS = ((1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB"))
MINUTE, HOUR, DAY = 60, 3600, 86400


def duration(seconds: float) -> str:
    """'45 s', '12 min 26 s', '3 h 05 min', '2 d 04 h'."""
    seconds = round(seconds)
    if seconds < MINUTE:
        return f"{seconds} s"
    if seconds < HOUR:
        return f"{seconds // MINUTE} min {seconds % MINUTE:02d} s"
    if seconds < DAY:
        return f"{seconds // HOUR} h {seconds % HOUR // MINUTE:02d} min"
    return f"{seconds // DAY} d {seconds % DAY // HOUR:02d} h"


def size(n: float) -> str:
    for factor, unit in UNITS:
        if n >= factor:
            return f"{n / factor:.1f} {unit}"
    return f"{int(n)} B"


def hours(h: float) -> str:
    return f"{h:.2f}" if h < 100 else f"{h:,.0f}"


def resource_label(plan: Plan) -> str:
    return "GPU-h" if plan.resources.on_gpu else "core-h"


def table(plan: Plan) -> list[str]:
    header = ("experiment", "jobs", "trainings", "epochs", "compute h", resource_label(plan), "wall", "disk")
    rows = [_cells(row) for row in [*plan.rows, plan.total]]
    cells = [header, *rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in cells]
    return [lines[0], *lines[1:-1], "-" * len(lines[0]), lines[-1]]


def _cells(row: Row) -> tuple[str, ...]:
    jobs = f"{row.jobs:,}" + (f" ({row.shared:,} shared)" if row.shared else "")
    return (
        row.name,
        jobs,
        f"{row.trainings:,}",
        f"{row.epochs:,}",
        hours(row.compute_h),
        hours(row.resource_h),
        duration(row.wall_s),
        size(row.disk_bytes),
    )


def where_line(plan: Plan) -> str:
    run, where = plan.run, plan.cache.where
    gpus = f", {run.gpu_slots} GPU slot(s)" if run.gpu_slots is not None else ""
    return f"on {where.get('device')} ({where.get('device_name')}), {run.cores} core(s){gpus}"


def text(plan: Plan) -> str:
    targets = sum(1 for f in plan.figures if f.job.is_target)
    lines = [
        f"igkd plan: {plan.total.jobs:,} job(s) left (+{targets} target rule(s)) {where_line(plan)}",
        "",
        *table(plan),
        "",
        "(n shared): students also asked for by a later experiment, counted here once;",
        "wall: an experiment run alone with the pending jobs it waits for; total: the whole run.",
        f"calibration {plan.cache.store.path}:",
        *(f"  {line}" for line in provenance(plan.calibration)),
        "notes:",
        *(f"  {note}" for note in plan.notes),
        "  every other assumed number: src/igkd/plan/assumptions.py",
    ]
    return "\n".join(lines)


def as_json(plan: Plan) -> dict:
    run = plan.run
    return {
        "run": {
            "config_files": [str(p) for p in run.config_files],
            "profile": run.spec.profile,
            "targets": list(run.spec.targets),
            "cores": run.cores,
            "gpu_slots": run.gpu_slots,
            "device": plan.cache.where,
        },
        "experiments": [row.as_dict() for row in plan.rows],
        "total": plan.total.as_dict(),
        "resource_hours_are": resource_label(plan),
        "rules": plan.rules,
        "calibration": {
            "file": str(plan.cache.store.path),
            "provenance": provenance(plan.calibration),
            "entries": [entry.as_dict() for entry in plan.calibration.entries.values()],
        },
        "notes": plan.notes,
    }
