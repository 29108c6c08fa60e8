"""Student stage: one distillation run with the paper's Adam recipe.

A run is an `igkd.experiments.StudentRun`: method, student id, training fraction, Monte Carlo
run and the recipe keys its method reads. Run r uses seed seed_offset + r and its own
stratified subsample of the training rows; the subsample is saved with the run (a packed
mask over the training rows) so any result can be traced to the images it saw.
`fit_student` trains (the sweeps call it too); `run_student` trains and writes the run's
folder. The method's step itself lives in `igkd.training.distiller`.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from igkd.architectures import at_tap, build_student, use_channels_last
from igkd.attribution.precompute import Precomputed
from igkd.data.store import Splits, stratified_pick
from igkd.experiments import StudentRun
from igkd.io import InputError, atomic_path, save_torch, write_csv, write_json
from igkd.models import n_params, paper_factor
from igkd.provenance import fingerprint
from igkd.runtime import Runtime
from igkd.training.augment import InputNorm
from igkd.training.distiller import Distiller, Recipe
from igkd.training.loaded import StudentSpec
from igkd.training.loop import (
    Checkpoint,
    LoopConfig,
    Optimization,
    TrainTask,
    accuracy,
    environment,
    fit,
    history_frame,
    seed_everything,
    settings_tag,
    to_chw_tensor,
)
from igkd.training.methods import Method, get_method
from igkd.training.teacher import TrainedTeacher


@dataclass(frozen=True)
class StudentResult:
    """A trained student, its per-epoch history, and the facts that trace it (seed, rows)."""

    model: torch.nn.Module
    history: list[dict]
    seed: int
    rows: np.ndarray  # the training rows it saw (its subsample), sorted
    method: Method
    teacher_rows: dict  # Distiller.rows_record: shuffled controls' rows, maps above a refined tolerance ({} if none)


def subsample(labels: np.ndarray, rows: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted stratified random `fraction` of `rows` (all rows when fraction is 1); at least
    one row of every class even where scikit-learn's split refuses a small set."""
    if fraction >= 1.0:
        return np.sort(rows)
    return np.sort(rows[stratified_pick(labels[rows], fraction, seed, side="train")])


def index_sha(rows: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(rows, dtype=np.int64).tobytes()).hexdigest()[:16]


def save_subsample(path, rows: np.ndarray, n_rows: int) -> None:
    """The run's training rows as a bit mask over the `n_rows` training images (n_rows / 8
    bytes: 7 KB on disk for CIFAR-10's 50,000, where int64 indices took 320 KB), with their sha."""
    mask = np.zeros(n_rows, dtype=bool)
    mask[rows] = True
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, mask=np.packbits(mask), n_rows=np.int64(n_rows), sha=np.str_(index_sha(rows)))


def load_subsample(path) -> np.ndarray:
    """The sorted training rows saved by save_subsample, checked against their sha."""
    with np.load(path) as saved:
        n_rows = int(saved["n_rows"])
        rows = np.flatnonzero(np.unpackbits(saved["mask"], count=n_rows))
        sha = str(saved["sha"])
    if index_sha(rows) != sha:
        raise InputError(f"{path}: the saved rows do not match their checksum {sha}")
    return rows


def fit_student(
    splits: Splits,
    run: StudentRun,
    teacher: TrainedTeacher | None,
    precomputed: Precomputed | None,
    runtime: Runtime,
    checkpoint: Checkpoint | None = None,
    later_epochs: int = 0,
) -> StudentResult:
    """Train one student. `teacher` is needed by AT methods only, `precomputed` by KD and
    IG methods only (either may be None otherwise). `later_epochs`: what the job trains
    after this student, counted in its log's time left."""
    torch.set_num_threads(runtime.threads)
    device = runtime.device
    recipe = run.recipe
    method = get_method(run.method)
    generator = seed_everything(run.seed)
    pool = splits.train_index if recipe.exclude_val else np.arange(len(splits.train_labels))
    rows = subsample(splits.train_labels, pool, run.fraction, run.seed)
    model = use_channels_last(build_student(run.student, len(splits.classes), recipe.width), runtime.channels_last)
    if method.at:
        teacher.model.use_channels_last(runtime.channels_last).to(device)
    tap = at_tap(run.student) if method.at else None
    distiller = Distiller(model.to(device), method, Recipe.from_student(recipe), tap, teacher)
    data = distiller.training_set(splits, rows, precomputed, device)
    # fused Adam on CUDA (one kernel for all parameters); the plain loop elsewhere, as before
    fused = torch.device(device).type == "cuda"
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay, fused=fused)
    loop = LoopConfig(
        recipe.epochs,
        recipe.batch_size,
        recipe.eval_every,
        what=f"students: {run}: the training subsample (fraction {run.fraction} of {len(pool)} rows)",
        precision=runtime.precision,
        later_epochs=later_epochs,
    )
    task = TrainTask(
        distiller, lambda batch: distiller.step(data, batch, generator), _evaluation(model, splits, recipe, device)
    )
    history = fit(task, Optimization(optimizer), data, loop, generator, checkpoint, runtime.log)
    record = distiller.rows_record(splits.train_labels, rows, precomputed)
    return StudentResult(model, history, run.seed, rows, method, record)


def _evaluation(model, splits: Splits, recipe, device: str):
    """Per-epoch scores: test accuracy (when the splits have test rows: sweeps pass none,
    they never see the test set) and validation accuracy (with students.exclude_val)."""
    prepare = InputNorm.from_config(recipe.normalize).prepare
    test_x = to_chw_tensor(splits.test_images, device)
    test_y = torch.as_tensor(splits.test_labels, device=device)
    val_rows = splits.val_index if recipe.exclude_val else np.zeros(0, dtype=np.int64)
    val_x = to_chw_tensor(splits.train_images[val_rows], device)
    val_y = torch.as_tensor(splits.train_labels[val_rows], device=device)

    def evaluate():
        scores = {}
        if len(test_y):
            scores["test_acc"] = accuracy(model, test_x, test_y, prepare)
        if len(val_rows):
            scores["val_acc"] = accuracy(model, val_x, val_y, prepare)
        return scores

    return evaluate


def _spec(run: StudentRun, splits: Splits) -> StudentSpec:
    """What igkd.load_student needs to rebuild and feed the run's model.pt."""
    size = splits.train_images.shape[1]
    return StudentSpec.of(run.student, run.recipe.width, splits.classes, size, run.recipe.normalize)


def run_student(
    splits: Splits,
    run: StudentRun,
    teacher: TrainedTeacher,
    precomputed: Precomputed | None,
    runtime: Runtime,
    out_dir: str,
) -> dict:
    """Train one student and write model.pt, metrics.json, history.csv and subsample.npz
    (wall-clock time goes to runtime.json beside metrics.json, which stays reproducible);
    metrics.json's `model` entry describes the network for igkd.load_student.

    An interrupted run resumes from out_dir/checkpoint.pt when its settings tag matches:
    what determines the run (StudentRun.params), the teacher's normalisation, the data and
    teacher checksums and the training code's fingerprint."""
    began = time.time()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    provenance = teacher.provenance(splits)
    norm = [list(teacher.norm.mean or []), list(teacher.norm.std or [])]
    tag = settings_tag("student", run.params(), *norm, provenance, fingerprint(__file__))
    result = fit_student(splits, run, teacher, precomputed, runtime, Checkpoint(out / "checkpoint.pt", tag))
    params = n_params(result.model)
    final = result.history[-1]
    metrics = {
        **run.record(),
        "n_train": int(len(result.rows)),
        "subsample_sha": index_sha(result.rows),
        "test_acc": final["test_acc"],
        "val_acc": final.get("val_acc"),
        "params": params,
        "factor": teacher.params / params,  # vs the teacher this run distils from
        "paper_factor": paper_factor(params, len(splits.classes)),
        **result.teacher_rows,
        **provenance,
        "model": _spec(run, splits).record(),
        "environment": environment(runtime.device, runtime.threads, result.history, runtime.precision),
    }
    save_subsample(out / "subsample.npz", result.rows, len(splits.train_labels))
    save_torch(out / "model.pt", result.model.cpu().state_dict())
    write_csv(out / "history.csv", history_frame(result.history))
    ended = time.time()  # epoch seconds, so runs of one SLURM job can be checked for overlap
    write_json(out / "runtime.json", {"seconds": ended - began, "started": began, "ended": ended})
    write_json(out / "metrics.json", metrics)
    (out / "checkpoint.pt").unlink(missing_ok=True)
    return metrics
