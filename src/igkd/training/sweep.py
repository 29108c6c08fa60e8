"""Train the grid points of a sweep and write each point's metrics.json and history.csv.

One call may train several points, so a job that owns a whole (small) sweep pays the
torch import and the data loading once. The students see the splits without their test
rows: the test set plays no part in choosing hyper-parameters, not even in a log line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from igkd.attribution.precompute import Precomputed
from igkd.data.store import Splits
from igkd.io import InputError, write_csv, write_json
from igkd.runtime import Runtime
from igkd.training.loop import environment, history_frame
from igkd.training.student import fit_student
from igkd.training.sweep_points import point_run, sweep_method
from igkd.training.teacher import TrainedTeacher


def without_test(splits: Splits) -> Splits:
    """The same splits with no test rows (training rows and validation index kept)."""
    return dataclasses.replace(splits, test_images=splits.test_images[:0], test_labels=splits.test_labels[:0])


@dataclass(frozen=True)
class SweepJob:
    """The grid points one job trains: their swept values (plus 'run') and output paths, in order."""

    sweep: str
    points: Sequence[Mapping]
    metric_paths: Sequence[str]
    history_paths: Sequence[str]

    def __post_init__(self) -> None:
        if not len(self.points) == len(self.metric_paths) == len(self.history_paths):
            raise ValueError(
                f"{len(self.points)} points but {len(self.metric_paths)} metrics and "
                f"{len(self.history_paths)} history paths"
            )


def train_points(
    splits: Splits,
    job: SweepJob,
    students: Mapping,
    sweeps_cfg: Mapping,
    teacher: TrainedTeacher,
    precomputed: Precomputed | None,
    runtime: Runtime,
) -> list[dict]:
    """Train the job's points of its sweep one after the other, on the validation split.
    `students`: the recipe settings every point shares (igkd.analysis.sweeps.point_settings)."""
    if len(splits.val_index) == 0:
        raise InputError(
            "data.h5 has an empty validation split; sweeps need dataset.val_fraction > 0 "
            "and a class with at least 2 training images"
        )
    method = sweep_method(sweeps_cfg, job.sweep)
    student_id = sweeps_cfg["student"]
    provenance = teacher.provenance(splits)  # the whole data set's, before the test rows go
    splits = without_test(splits)
    runs = [point_run(students, sweeps_cfg, job.sweep, _values(p), int(p["run"])) for p in job.points]
    written = []
    for i, (point, student, metrics_path, history_path) in enumerate(
        zip(job.points, runs, job.metric_paths, job.history_paths)
    ):
        values, run = _values(point), student.run
        later = sum(r.recipe.epochs for r in runs[i + 1 :])  # the job's time left counts its later points
        result = fit_student(splits, student, teacher, precomputed, runtime, later_epochs=later)
        metrics = {
            "sweep": job.sweep,
            "method": method,
            "student": student_id,
            "run": run,
            "seed": result.seed,
            **values,
            "n_train": int(len(result.rows)),
            "n_val": int(len(splits.val_index)),
            "epochs": student.recipe.epochs,
            "val_acc": result.history[-1]["val_acc"],
            **provenance,
            "environment": environment(runtime.device, runtime.threads, result.history, runtime.precision),
        }
        Path(metrics_path).parent.mkdir(parents=True, exist_ok=True)
        write_csv(history_path, history_frame(result.history))
        write_json(metrics_path, metrics)
        runtime.log(f"{job.sweep} {values} run {run}: validation accuracy {metrics['val_acc']:.2f} %")
        written.append(metrics)
    return written


def _values(point: Mapping) -> dict:
    """A point's swept values (without its run)."""
    return {k: v for k, v in point.items() if k != "run"}
