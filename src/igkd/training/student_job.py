"""One distill_student job as a function of plain data, so that the job's own process or a
warm worker (igkd.training.worker) runs the same code.

Light to import on purpose: torch and the training code load when the job runs, so a job
handed to a warm worker never imports them in its own process.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import SimpleNamespace

# The rule's params and outputs (workflow/rules/students.smk) the job reads.
PARAMS = ("run", "teacher_width", "device", "precision", "code")
OUTPUTS = ("model", "metrics", "history", "subsample", "runtime")


def uses_warm_workers(runtime: Mapping) -> bool:
    """Whether student jobs run in warm workers: runtime.warm_workers, on the CPU only (a
    GPU job keeps its own process and its own CUDA context)."""
    return bool(runtime.get("warm_workers")) and runtime.get("device") == "cpu"


@dataclass(frozen=True)
class StudentJob:
    """What the rule hands its script: files, params, threads, log and the runtime section.
    Plain data (JSON-safe): it travels to a warm worker as it is."""

    inputs: dict  # data, teacher_model, teacher_metrics: paths; precompute: a list of 0 or 1 path
    outputs: dict
    params: dict
    threads: int
    log: str | None
    runtime: dict  # config runtime
    plugins: tuple = ()  # config plugins, as validate_config resolved them (igkd.plugins)

    @classmethod
    def from_snakemake(cls, snakemake) -> StudentJob:
        from igkd.runtime import as_paths

        return cls(
            inputs={
                **{k: str(getattr(snakemake.input, k)) for k in ("data", "teacher_model", "teacher_metrics")},
                "precompute": as_paths(snakemake.input.precompute),
            },
            outputs={k: str(getattr(snakemake.output, k)) for k in OUTPUTS},
            params={k: getattr(snakemake.params, k) for k in PARAMS},
            threads=int(snakemake.threads),
            log=str(snakemake.log[0]) if len(snakemake.log) else None,
            runtime=dict(snakemake.config["runtime"]),
            plugins=tuple(snakemake.config.get("plugins") or ()),
        )

    @property
    def worker_key(self) -> str:
        """Which warm workers may run it: same igkd code and same plugin sources (a worker
        keeps the plugins it imported, so an edited plugin needs a fresh one)."""
        from igkd.plugins import sources_digest

        return self.params["code"] + sources_digest(self.plugins)

    @property
    def warm(self) -> bool:
        """Whether a warm worker trains it (uses_warm_workers)."""
        return uses_warm_workers(self.runtime)

    def as_snakemake(self) -> SimpleNamespace:
        """The parts of Snakemake's `snakemake` object that igkd.runtime.start_job reads."""
        return SimpleNamespace(
            log=[self.log], config={"runtime": self.runtime}, threads=self.threads, params=SimpleNamespace()
        )


def run_student_job(job: StudentJob, started: str | None = None) -> int:
    """Train the job's StudentRun and write its outputs (igkd.training.student.run_student);
    `started`: a first line for the job's log (where it runs)."""
    from igkd.attribution.precompute import load_precomputed_for
    from igkd.data.store import read_data_h5
    from igkd.experiments import StudentRun
    from igkd.plugins import load as load_plugins
    from igkd.runtime import start_job
    from igkd.training.student import run_student
    from igkd.training.teacher import load_trained_teacher

    # holds the job's GPU slot until it ends; trains at runtime.precision (a rule param: a change retrains)
    runtime = start_job(job.as_snakemake(), whole_gpu=False, precision=job.params["precision"])
    if started:
        runtime.log(started)
    try:
        load_plugins(job.plugins)
        run = StudentRun.from_params(job.params["run"])
        splits = read_data_h5(job.inputs["data"])
        teacher = load_trained_teacher(
            job.inputs["teacher_model"],
            job.inputs["teacher_metrics"],
            num_classes=len(splits.classes),
            width=job.params["teacher_width"],
        )
        precomputed = None
        if job.inputs["precompute"]:
            precomputed = load_precomputed_for(job.inputs["precompute"][0], splits, teacher.checksum)
        out_dir = job.outputs["metrics"].rsplit("/", 1)[0]
        metrics = run_student(splits, run, teacher, precomputed, runtime, out_dir)
        runtime.log(f"{run}: test accuracy {metrics['test_acc']:.2f} %")
    finally:
        runtime.claim.release()
    return 0


def warm_up() -> None:
    """Import what a job uses, torch._dynamo included (torch.optim imports it at the first
    step): a warm worker does this once, before its first job arrives."""
    import torch._dynamo  # noqa: F401

    import igkd.attribution.precompute  # noqa: F401
    import igkd.training.student  # noqa: F401
    import igkd.training.teacher  # noqa: F401
