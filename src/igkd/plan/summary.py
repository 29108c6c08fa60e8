"""Per-experiment and total figures of a plan: jobs, trainings, epochs, hours, wall time, disk.

A student shared by several experiments is counted once, under its first owner, and
that row notes how many of its students others share. An experiment's wall time is
that of running it alone: its own jobs and every pending job they wait for, scheduled
on the run's cores and GPU slots (as `snakemake <experiment>` would).
"""

from __future__ import annotations

from dataclasses import dataclass

from igkd.plan.cost import JobCost
from igkd.plan.jobs import Job, ancestors, dependencies
from igkd.plan.schedule import Task, makespan

HOUR = 3600.0


@dataclass(frozen=True)
class Row:
    name: str
    jobs: int
    trainings: int
    epochs: int
    compute_h: float  # sum of the jobs' durations
    resource_h: float  # core-hours (CPU) or GPU-hours (GPU)
    wall_s: float
    disk_bytes: int
    shared: int = 0  # of its student jobs, how many other experiments ask for too

    def as_dict(self) -> dict:
        return {
            "experiment": self.name,
            "jobs": self.jobs,
            "shared_students": self.shared,
            "trainings": self.trainings,
            "epochs": self.epochs,
            "compute_hours": round(self.compute_h, 4),
            "resource_hours": round(self.resource_h, 4),
            "wall_seconds": round(self.wall_s, 1),
            "disk_bytes": self.disk_bytes,
        }


@dataclass(frozen=True)
class Resources:
    """What the run gets: cores, GPU slots (None: unlimited), and whether jobs run on a GPU."""

    cores: int
    gpu_slots: int | None
    on_gpu: bool
    slots_per_gpu: int = 1
    one_slot_rules: frozenset = frozenset()
    whole_gpu_rules: frozenset = frozenset()

    def cores_of(self, job: Job) -> int:
        return max(1, min(job.threads, self.cores))

    def gpu_units(self, job: Job) -> int:
        """GPU slots the job holds: its declared `gpu` resource, else the rule's kind."""
        if not self.on_gpu or job.is_target:
            return 0
        declared = int(job.resource("gpu", 0))
        if declared > 0:
            return declared
        if job.rule in self.whole_gpu_rules:
            return self.slots_per_gpu
        return 1 if job.rule in self.one_slot_rules else 0

    def resource_hours(self, job: Job, seconds: float) -> float:
        """Core-hours on a CPU run; GPU-hours (a slot is 1/slots_per_gpu of a GPU) on a GPU run."""
        if self.on_gpu:
            return seconds * self.gpu_units(job) / self.slots_per_gpu / HOUR
        return seconds * self.cores_of(job) / HOUR


@dataclass(frozen=True)
class JobFigures:
    """A job with what the plan computed for it."""

    job: Job
    cost: JobCost
    disk: int
    owners: tuple[str, ...]
    memory: int | None = None  # host bytes at the job's peak (igkd.plan.memory), when asked for


def tasks(figures: list[JobFigures], resources: Resources) -> list[Task]:
    deps = dependencies([f.job for f in figures])
    return [
        Task(
            id=f.job.jobid,
            seconds=f.cost.seconds,
            cores=resources.cores_of(f.job),
            gpus=resources.gpu_units(f.job),
            priority=f.job.priority,
            order=f.job.order,
            deps=frozenset(deps[f.job.jobid]),
        )
        for f in figures
    ]


def summarize(figures: list[JobFigures], resources: Resources, order: list[str]) -> tuple[list[Row], Row]:
    """Rows per experiment (in `order`, then any other names; empty ones left out) and the total."""
    all_tasks = {t.id: t for t in tasks(figures, resources)}
    deps = {i: set(t.deps) for i, t in all_tasks.items()}
    names = [*order, *sorted({o for f in figures for o in f.owners} - set(order))]
    rows = []
    for name in names:
        counted = [f for f in figures if f.owners[0] == name]
        asking = {f.job.jobid for f in figures if name in f.owners}
        if not counted and not asking:
            continue
        needed = ancestors(asking, deps)
        wall = makespan([all_tasks[i] for i in needed], resources.cores, resources.gpu_slots)
        shared = sum(1 for f in counted if f.job.rule == "distill_student" and len(f.owners) > 1)
        rows.append(_row(name, counted, resources, wall, shared))
    total = _row("total", figures, resources, makespan(all_tasks.values(), resources.cores, resources.gpu_slots))
    return rows, total


def _row(name: str, figures: list[JobFigures], resources: Resources, wall: float, shared: int = 0) -> Row:
    work = [f for f in figures if not f.job.is_target]
    return Row(
        name=name,
        jobs=len(work),
        trainings=sum(f.cost.trainings for f in work),
        epochs=sum(f.cost.epochs for f in work),
        compute_h=sum(f.cost.seconds for f in work) / HOUR,
        resource_h=sum(resources.resource_hours(f.job, f.cost.seconds) for f in work),
        wall_s=wall,
        disk_bytes=sum(f.disk for f in work),
        shared=shared,
    )


def per_rule(figures: list[JobFigures]) -> dict[str, dict]:
    """rule -> jobs, longest and total seconds, largest host memory (None: not estimated), for
    SLURM's limits and the JSON."""
    rules: dict[str, dict] = {}
    for f in figures:
        if f.job.is_target:
            continue
        entry = rules.setdefault(
            f.job.rule, {"jobs": 0, "longest_seconds": 0.0, "total_seconds": 0.0, "memory_bytes": None}
        )
        entry["jobs"] += 1
        entry["longest_seconds"] = max(entry["longest_seconds"], f.cost.seconds)
        entry["total_seconds"] += f.cost.seconds
        if f.memory is not None:
            entry["memory_bytes"] = max(entry["memory_bytes"] or 0, f.memory)
    return rules
