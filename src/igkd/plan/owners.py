"""Which experiment each job is part of, so the plan can cost the experiments one by one.

A student belongs to every experiment that asks for it (igkd.experiments.Campaign: two
experiments asking for the same (method, student, fraction, run) share one training); the
plan counts it under the first and notes the sharing. Every other rule belongs to one
experiment by what it makes: sweeps, controls, timing, the external set, the stages
every experiment shares (data, teacher, precompute), and reporting for the rest. A
rule with an `experiment` wildcard (its tables and statistics) belongs to that one.
"""

from __future__ import annotations

from collections.abc import Callable

from igkd.plan.jobs import Job

SHARED = "shared"
REPORTING = "reporting"
CONTROLS = "controls"
SWEEP_EXPERIMENT = {"kd": "kd_grid", "overlay_p": "overlay_p"}
RULE_EXPERIMENT = {
    "train_sweep_kd": "kd_grid",
    "train_sweep_overlay_p": "overlay_p",
    "fig_kd_grid": "kd_grid",
    "fig_overlay_p": "overlay_p",
    "precompute_reference_defect": CONTROLS,
    "compare_controls": CONTROLS,
    "fig_controls": CONTROLS,
    "time_models": "timing",
    "fig_latency": "timing",
    "export_standin": "external",
    "evaluate_external": "external",
    "fig_imagenet": "external",
    "download_cifar10": SHARED,
    "prepare_data": SHARED,
    "train_teacher": SHARED,
    "precompute_attributions": SHARED,
}
# The order of the plan's rows: the student experiments in config order come first.
LATER_ROWS = ("kd_grid", "overlay_p", CONTROLS, "timing", "external", SHARED, REPORTING)


def student_owners(config: dict, targets: tuple[str, ...] = ()) -> Callable[[dict], list[str]]:
    """wildcards of a distill_student job -> the experiments asking for that student.

    Campaign.owner_index, built once (Campaign.owners per job would rebuild it for every
    job). A disabled experiment owns students only when the run names it as a target.
    """
    from igkd.experiments import Campaign, fraction_text

    index = Campaign.from_config(config).owner_index(also=targets)

    def owners(wildcards: dict) -> list[str]:
        fraction = fraction_text(float(wildcards["fraction"]))
        return index.get((wildcards["method"], wildcards["student"], fraction, int(wildcards["run"])), [])

    return owners


def job_owners(job: Job, students: Callable[[dict], list[str]]) -> tuple[str, ...]:
    """The experiments `job` is part of, first owner first."""
    if job.rule == "distill_student":
        return tuple(students(job.wildcards)) or (REPORTING,)
    experiment = job.wildcards.get("experiment")
    if experiment:
        return (experiment,)
    sweep = job.wildcards.get("sweep")
    if sweep and (job.rule.startswith("train_sweep") or job.rule == "collect_sweep"):
        return (SWEEP_EXPERIMENT.get(sweep, sweep),)
    return (RULE_EXPERIMENT.get(job.rule, REPORTING),)


def row_order(config: dict) -> list[str]:
    """The plan's experiment rows in order: student experiments as configured, then the rest."""
    first = list(config["experiments"])
    return [*first, *(name for name in LATER_ROWS if name not in first)]


def config_students(config: dict) -> list[str]:
    """Every student id the config trains (what time_models benchmarks), by architecture and size."""
    from igkd.experiments import Campaign

    return Campaign.from_config(config).students()
