"""Student stage: one (method, drop, run) distillation with the paper's Adam recipe.

Run r uses seed r and its own stratified subsample of the training rows; the subsample
indices are saved with the run so any result can be traced to the images it saw.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from igkd.augment import augment_batch, normalize, to_float
from igkd.data.store import Splits, per_class_pick
from igkd.distill import Distiller
from igkd.methods import get_method
from igkd.io import InputError, atomic_path, save_torch, write_csv, write_json
from igkd.models import at_block, build_student, compression_factor, n_params
from igkd.precompute import Precomputed
from igkd.provenance import fingerprint
from igkd.train import (
    LoopConfig,
    TrainSet,
    accuracy,
    environment,
    fit,
    history_frame,
    seed_everything,
    settings_tag,
    to_chw_tensor,
)


# students.* keys that size the campaign but do not change any one run's result: editing
# them must not discard an interrupted run's checkpoint.
CAMPAIGN_KEYS = ("methods", "drops", "runs")


def subsample(labels: np.ndarray, rows: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted stratified random `fraction` of `rows` (all rows when fraction is 1).

    scikit-learn's split, except where it refuses a small set (a class of one row, fewer
    rows kept or left out than classes): then `per_class_pick`, which keeps at least one
    row of every class.
    """
    if fraction >= 1.0:
        return np.sort(rows)
    try:
        kept, _ = train_test_split(rows, train_size=fraction, stratify=labels[rows], random_state=seed)
    except ValueError:
        kept = rows[per_class_pick(labels[rows], fraction, seed, leave=0)]
    return np.sort(kept)


def permutation(n: int, seed: int) -> np.ndarray:
    """A fixed-seed permutation of n rows (a shuffled loader's order, as the reference code used)."""
    return np.random.default_rng(seed).permutation(n)


def derangement(n: int, seed: int) -> np.ndarray:
    """A fixed-seed permutation with no fixed point, uniform over such permutations
    (rejection sampling; about e = 2.7 draws): under a shuffled_* control no image keeps
    its own row, not even the one or so a plain permutation would leave in place."""
    if n < 2:
        raise InputError(f"shuffled_* controls: a derangement needs at least 2 rows (training images), got {n}")
    rng = np.random.default_rng(seed)
    while True:
        perm = rng.permutation(n)
        if not (perm == np.arange(n)).any():
            return perm


def teacher_rows(method, n_train: int, control_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Which precompute row feeds training image i's overlay map and its soft targets.

    Row i for both (aligned) unless the method is a shuffled control: then a fixed
    derangement (maps: seed control_seed, logits: control_seed + 1) detaches the rows.
    """
    aligned = np.arange(n_train)
    map_rows = derangement(n_train, control_seed) if method.shuffle_maps else aligned
    logit_rows = derangement(n_train, control_seed + 1) if method.shuffle_logits else aligned
    return map_rows, logit_rows


def index_sha(rows: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(rows, dtype=np.int64).tobytes()).hexdigest()[:16]


def distill_student(
    splits: Splits,
    method_name: str,
    drop: int,
    run: int,
    cfg: dict,
    *,
    pre: Precomputed | None,
    teacher: torch.nn.Module | None,
    teacher_mean,
    teacher_std,
    device: str,
    threads: int,
    channels_last: bool = True,
    checkpoint=None,
    checkpoint_tag: str = "",
    log=None,
) -> tuple[torch.nn.Module, list[dict], dict]:
    """Train one student; returns the model, its history and run facts (rows used, seeds)."""
    torch.set_num_threads(threads)
    method = get_method(method_name)
    seed = cfg.get("seed_offset", 0) + run
    generator = seed_everything(seed)
    pool = splits.train_index if cfg["exclude_val"] else np.arange(len(splits.train_labels))
    rows = subsample(splits.train_labels, pool, cfg["fraction"], seed)
    n_train = len(splits.train_labels)
    map_rows, logit_rows = teacher_rows(method, n_train, cfg["control_seed"])
    data = TrainSet(
        to_chw_tensor(splits.train_images[rows], device),
        torch.as_tensor(splits.train_labels[rows], device=device),
        torch.as_tensor(pre.maps[map_rows[rows]], device=device) if method.ig else None,
        torch.as_tensor(pre.logits[logit_rows[rows]], device=device) if method.kd else None,
    )
    student = build_student(drop, len(splits.classes), cfg["width"]).use_channels_last(channels_last).to(device)
    student_norm = (cfg["normalize"]["mean"], cfg["normalize"]["std"]) if cfg.get("normalize") else (None, None)
    distiller = Distiller(
        student,
        method,
        alpha=cfg["kd"]["alpha"],
        temperature=cfg["kd"]["temperature"],
        gamma=cfg["at"]["gamma"],
        at_block=at_block(drop),
        teacher=teacher.use_channels_last(channels_last).to(device) if method.at else None,
        teacher_mean=teacher_mean,
        teacher_std=teacher_std,
        student_mean=student_norm[0],
        student_std=student_norm[1],
    )
    # fused Adam on CUDA (one kernel for all parameters); the plain loop elsewhere, as before
    fused = torch.device(device).type == "cuda"
    optimizer = torch.optim.Adam(student.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"], fused=fused)
    ig = cfg["ig"]

    def step(batch_rows):
        x01 = augment_batch(  # index_select copies whole rows: ~5x faster than images[rows] here
            data.images.index_select(0, batch_rows),
            data.maps.index_select(0, batch_rows) if method.ig else None,
            padding=cfg["crop_padding"],
            flip=cfg["flip"],
            overlay_p=ig["p"] if method.ig else 0.0,
            power_range=(ig["power_min"], ig["power_max"]),
            blend=ig["blend"],
            generator=generator,
        )
        labels = data.labels[batch_rows]
        teacher_logits = data.teacher_logits[batch_rows] if method.kd else None
        logits, losses = distiller(x01, labels, teacher_logits)
        return logits, labels, losses

    def prepare(batch_u8):
        x = to_float(batch_u8)
        return normalize(x, *student_norm) if student_norm[0] is not None else x

    test_x = to_chw_tensor(splits.test_images, device)
    test_y = torch.as_tensor(splits.test_labels, device=device)
    val_rows = splits.val_index if cfg["exclude_val"] else np.zeros(0, dtype=np.int64)
    val_x = to_chw_tensor(splits.train_images[val_rows], device)
    val_y = torch.as_tensor(splits.train_labels[val_rows], device=device)

    def evaluate():
        scores = {}
        if len(test_y):  # sweeps pass splits without test rows: they never see the test set
            scores["test_acc"] = accuracy(student, test_x, test_y, prepare)
        if len(val_rows):
            scores["val_acc"] = accuracy(student, val_x, val_y, prepare)
        return scores

    history = fit(
        distiller,
        optimizer,
        None,
        data,
        step,
        LoopConfig(
            cfg["epochs"],
            cfg["batch_size"],
            cfg.get("eval_every", 1),
            what=f"students: {method_name} drop {drop} run {run}: the training subsample "
            f"(students.fraction {cfg['fraction']} of {len(pool)} rows)",
        ),
        generator,
        evaluate=evaluate,
        checkpoint=checkpoint,
        tag=checkpoint_tag,
        log=log,
    )
    facts = {"seed": seed, "rows": rows, "method_spec": method}
    return student, history, facts


def student_stage(
    splits: Splits,
    method_name: str,
    drop: int,
    run: int,
    cfg: dict,
    out_dir: str,
    *,
    pre: Precomputed | None,
    teacher: torch.nn.Module | None,
    teacher_mean,
    teacher_std,
    teacher_params: int,
    provenance: dict,
    device: str,
    threads: int,
    channels_last: bool = True,
    log=None,
) -> dict:
    """Train one student and write model.pt, metrics.json, history.csv and subsample.npy
    (wall-clock time goes to runtime.json beside metrics.json, which stays reproducible)."""
    began = time.time()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run_cfg = {k: v for k, v in cfg.items() if k not in CAMPAIGN_KEYS}
    tag = settings_tag(
        "student", method_name, drop, run, run_cfg, teacher_mean, teacher_std, provenance, fingerprint("student")
    )
    model, history, facts = distill_student(
        splits,
        method_name,
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
        checkpoint=out / "checkpoint.pt",
        checkpoint_tag=tag,
        log=log,
    )
    params = n_params(model)
    final = history[-1]
    method = facts["method_spec"]
    metrics = {
        "method": method_name,
        "control": method.control,
        "drop": drop,
        "run": run,
        "seed": facts["seed"],
        "fraction": cfg["fraction"],
        "n_train": int(len(facts["rows"])),
        "subsample_sha": index_sha(facts["rows"]),
        "test_acc": final["test_acc"],
        "val_acc": final.get("val_acc"),
        "params": params,
        "factor": compression_factor(drop, len(splits.classes), cfg["width"]),
        "factor_vs_teacher": teacher_params / params,
        "epochs": cfg["epochs"],
        **provenance,
        "environment": environment(device, threads, history),
    }
    with atomic_path(out / "subsample.npy") as tmp:
        np.save(tmp, facts["rows"].astype(np.int64))
    save_torch(out / "model.pt", model.cpu().state_dict())
    write_csv(out / "history.csv", history_frame(history))
    ended = time.time()  # epoch seconds, so runs of one SLURM job can be checked for overlap
    write_json(out / "runtime.json", {"seconds": ended - began, "started": began, "ended": ended})
    write_json(out / "metrics.json", metrics)
    (out / "checkpoint.pt").unlink(missing_ok=True)
    return metrics
