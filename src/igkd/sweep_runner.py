"""Train the grid points of a sweep and write each point's metrics.json and history.csv.

One call may train several points, so a job that owns a whole (small) sweep pays the
torch import and the data loading once. The students see the splits without their test
rows: the test set plays no part in choosing hyper-parameters, not even in a log line.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Mapping, Sequence

from igkd.data.store import Splits
from igkd.io import InputError, write_csv, write_json
from igkd.precompute import Precomputed
from igkd.student import distill_student
from igkd.sweeps import SECTION, point_config
from igkd.train import environment, history_frame


def without_test(splits: Splits) -> Splits:
    """The same splits with no test rows (training rows and validation index kept)."""
    return dataclasses.replace(splits, test_images=splits.test_images[:0], test_labels=splits.test_labels[:0])


def train_points(
    splits: Splits,
    sweep: str,
    points: Sequence[Mapping],
    metric_paths: Sequence[str],
    history_paths: Sequence[str],
    students_cfg: Mapping,
    sweeps_cfg: Mapping,
    *,
    pre: Precomputed | None,
    teacher,
    teacher_mean,
    teacher_std,
    provenance: dict,
    device: str,
    threads: int,
    channels_last: bool = True,
    log=print,
) -> list[dict]:
    """Train `points` (dicts of the swept values plus 'run') of `sweep` one after the other."""
    if not len(points) == len(metric_paths) == len(history_paths):
        raise ValueError(f"{len(points)} points but {len(metric_paths)} metrics and {len(history_paths)} history paths")
    if len(splits.val_index) == 0:
        raise InputError(
            "data.h5 has an empty validation split; sweeps need dataset.val_fraction > 0 "
            "and a class with at least 2 training images"
        )
    method = sweeps_cfg[SECTION[sweep]]["method"]
    drop = sweeps_cfg["drop"]
    splits = without_test(splits)
    written = []
    for point, metrics_path, history_path in zip(points, metric_paths, history_paths):
        values = {k: v for k, v in point.items() if k != "run"}
        cfg = point_config(students_cfg, sweeps_cfg, sweep, values)
        run = int(point["run"])
        _, history, facts = distill_student(
            splits,
            method,
            drop,
            run,
            cfg,
            pre=pre,
            teacher=teacher,
            teacher_mean=teacher_mean,
            teacher_std=teacher_std,
            device=device,
            threads=threads,
            channels_last=channels_last,
            log=log,
        )
        metrics = {
            "sweep": sweep,
            "method": method,
            "drop": drop,
            "run": run,
            "seed": facts["seed"],
            **values,
            "n_train": int(len(facts["rows"])),
            "n_val": int(len(splits.val_index)),
            "epochs": cfg["epochs"],
            "val_acc": history[-1]["val_acc"],
            **provenance,
            "environment": environment(device, threads, history),
        }
        Path(metrics_path).parent.mkdir(parents=True, exist_ok=True)
        write_csv(history_path, history_frame(history))
        write_json(metrics_path, metrics)
        log(f"{sweep} {values} run {run}: validation accuracy {metrics['val_acc']:.2f} %")
        written.append(metrics)
    return written
