"""A plan from start to end: the run's jobs, the numbers they need, their costs, the summary.

The cost model runs twice: first against a Recorder, which collects the calibration keys
the pending jobs need; those missing from the cache are measured; then against the
calibration. So exactly what the plan uses is measured, and nothing else.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from igkd import folders
from igkd.io import InputError
from igkd.plan.cache import DeviceCache, open_cache
from igkd.plan.calibration import Calibration, EnsureOptions, Measure, Recorder, ensure
from igkd.plan.cost import CostContext, estimate
from igkd.plan.dataset import count_images, data_size
from igkd.plan.disk import job_bytes
from igkd.plan.dryrun import pending_jobs
from igkd.plan.jobs import Job
from igkd.plan.keys import ModelSettings
from igkd.plan.memory import job_memory
from igkd.plan.owners import config_students, job_owners, row_order, student_owners
from igkd.plan.runspec import ResolvedRun, RunSpec, resolve
from igkd.plan.summary import JobFigures, Resources, Row, per_rule, summarize


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Options:
    recalibrate: bool = False
    forceall: bool = False  # every job of the run, done or not (what `igkd calibrate` measures for)
    measure: Measure | None = None  # None: igkd.plan.measure.measure
    log: Callable[[str], None] = _stderr
    cache_root: Path | None = None  # where .igkd/calibration is; None: the current directory
    memory: bool = False  # also estimate each job's host memory (igkd.plan.memory; for SLURM's mem_mb)


@dataclass(frozen=True)
class Plan:
    run: ResolvedRun
    cache: DeviceCache
    calibration: Calibration
    context: CostContext
    figures: list[JobFigures]
    rows: list[Row]
    total: Row
    resources: Resources
    notes: list[str] = field(default_factory=list)

    @property
    def rules(self) -> dict[str, dict]:
        return per_rule(self.figures)


def results_dir(run: ResolvedRun) -> Path:
    return run.path(folders.results_dir(run.config))


def cost_context(run: ResolvedRun, jobs: list[Job], kind: str) -> CostContext:
    """What the estimates read: data sizes, model settings, refined IG steps of finished files."""
    config = run.config
    pending = {job.rule for job in jobs}
    data = data_size(config, results_dir(run) / "data.h5", trust_file="prepare_data" not in pending)
    root = config["external_eval"].get("root")
    external = count_images(run.path(root)) if root and run.path(root).is_dir() else None
    return CostContext(
        config=config,
        data=data,
        device_kind=kind,
        models=ModelSettings.from_config(config, data.classes),
        refined_steps=refined_steps(results_dir(run) / "precompute"),
        cores=run.cores,
        timed_students=tuple(config_students(config)),
        external_images=external,
    )


def refined_steps(folder: Path) -> dict[str, float]:
    """precompute file stem -> the mean IG points per image it records (converged IG only)."""
    if not folder.is_dir():
        return {}
    import h5py

    found = {}
    for path in sorted(folder.glob("*.h5")):
        try:
            with h5py.File(path, "r") as h5:
                if "steps_mean" in h5.attrs:
                    found[path.stem] = float(h5.attrs["steps_mean"])
        except OSError:
            continue  # a file being written: no number from it
    return found


def calibrate_jobs(jobs: list[Job], ctx: CostContext, cache: DeviceCache, options: Options) -> Calibration:
    """The calibration entries these jobs' estimates need, measuring what is missing."""
    recorder = Recorder()
    for job in jobs:
        with readable(job):
            estimate(job, ctx, recorder)
            job_bytes(job, ctx, recorder)
            if options.memory:
                job_memory(job, ctx, recorder)
    if options.measure is None:
        from igkd.plan.measure import measure
    else:
        measure = options.measure
    ensure_options = EnsureOptions(options.recalibrate, cache.can_measure, cache.why_not, options.log)
    return ensure(cache.store, recorder.keys, measure, cache.where, ensure_options)


def prepare(spec: RunSpec, options: Options) -> tuple[ResolvedRun, list[Job], CostContext, DeviceCache, Calibration]:
    run = resolve(spec)
    cache = open_cache(run.requested_device, options.cache_root or Path.cwd())
    jobs = pending_jobs(run, forceall=options.forceall)
    ctx = cost_context(run, jobs, cache.kind)
    return run, jobs, ctx, cache, calibrate_jobs(jobs, ctx, cache, options)


def make_plan(spec: RunSpec, options: Options | None = None) -> Plan:
    """Cost of what the run `spec` has left: per job, per experiment and in total."""
    options = options or Options()
    run, jobs, ctx, cache, calibration = prepare(spec, options)
    owners_of = student_owners(run.config, spec.targets)
    figures = [figures_of(job, ctx, calibration, owners_of, options.memory) for job in jobs]
    a = ctx.assumptions.time
    resources = Resources(
        cores=run.cores,
        gpu_slots=run.gpu_slots,
        on_gpu=cache.kind == "cuda",
        slots_per_gpu=int(run.config["runtime"]["students_per_gpu"]),
        one_slot_rules=a.one_slot_rules,
        whole_gpu_rules=a.whole_gpu_rules,
    )
    rows, total = summarize(figures, resources, row_order(run.config))
    data = ctx.data
    notes = [f"data: {data.n_train:,} training rows ({data.n_val:,} validation), {data.n_test:,} test: {data.source}"]
    notes += list(dict.fromkeys(n for f in figures for n in f.cost.notes))
    if resources.on_gpu and run.gpu_slots is None:
        notes.append("GPU slots do not limit the wall time: give --gpus N for N GPUs")
    return Plan(run, cache, calibration, ctx, figures, rows, total, resources, notes)


def figures_of(job: Job, ctx: CostContext, calibration: Calibration, owners_of, memory: bool = False) -> JobFigures:
    """A job's cost, bytes and experiments (and host memory, with `memory`)."""
    with readable(job):
        return JobFigures(
            job,
            estimate(job, ctx, calibration),
            job_bytes(job, ctx, calibration),
            job_owners(job, owners_of),
            job_memory(job, ctx, calibration) if memory else None,
        )


@contextlib.contextmanager
def readable(job: Job):
    """A job the cost model cannot read (a rule whose wildcards changed) is one clean error."""
    try:
        yield
    except InputError:
        raise
    except (KeyError, ValueError) as err:
        raise InputError(
            f"cannot cost job {job.jobid} ({job.rule}, wildcards {job.wildcards}): {err!r}; has the workflow "
            f"changed what igkd.plan.cost expects?"
        ) from err


def run_calibration(spec: RunSpec, options: Options | None = None) -> tuple[DeviceCache, Calibration]:
    """Measure (or reuse) every number any job of the run needs, done or not, the memory
    probes included (so a calibration copied from a GPU node sizes SLURM's mem_mb too)."""
    options = options or Options()
    _, _, _, cache, calibration = prepare(spec, dataclasses.replace(options, forceall=True, memory=True))
    return cache, calibration
