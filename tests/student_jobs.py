"""Student jobs as the distill_student rule hands them to its script (igkd.training.student_job),
on tiny files: the 8x8 digits and an untrained width-0.25 teacher."""

from __future__ import annotations

from pathlib import Path

from configs import STUDENT, student_run
from igkd.config import load_config
from igkd.data.store import write_data_h5
from igkd.io import save_torch, write_json
from igkd.models import build_teacher, n_params
from igkd.training.student_job import OUTPUTS, StudentJob

REPO = Path(__file__).resolve().parents[1]
WIDTH = 0.25
FILES = ("model.pt", "metrics.json", "history.csv", "subsample.npz", "runtime.json")  # students.smk's outputs


def write_inputs(folder: Path, splits) -> Path:
    """data.h5 and an (untrained) width-0.25 teacher's model.pt and metrics.json in `folder`."""
    teacher = build_teacher(len(splits.classes), WIDTH)
    write_data_h5(folder / "data.h5", splits, {})
    save_torch(folder / "model.pt", teacher.state_dict())
    metrics = {"normalize_mean": [0.3] * 3, "normalize_std": [0.3] * 3, "params": n_params(teacher)}
    write_json(folder / "metrics.json", metrics)
    return folder


def make_job(inputs: Path, out: Path, method: str, run: int, students=STUDENT, warm: bool = True) -> StudentJob:
    """The job of `method` (drop 15, the full training set, run `run`) writing to folder `out`,
    logging to `out`.log; on the CPU, with runtime.warm_workers `warm`."""
    runtime = {**load_config(REPO / "config.yaml")["runtime"], "device": "cpu", "warm_workers": warm}
    out.parent.mkdir(parents=True, exist_ok=True)  # Snakemake makes the log's folder
    return StudentJob(
        inputs={
            "data": str(inputs / "data.h5"),
            "teacher_model": str(inputs / "model.pt"),
            "teacher_metrics": str(inputs / "metrics.json"),
            "precompute": [],
        },
        outputs={name: str(out / file) for name, file in zip(OUTPUTS, FILES, strict=True)},
        params={
            "run": student_run(method, 15, run, fraction=1.0, students=students).params(),
            "teacher_width": WIDTH,
            "device": "cpu",
            "precision": "fp32",
            "code": "test",
        },
        threads=1,
        log=str(out.parent / f"{out.name}.log"),
        runtime=runtime,
    )
