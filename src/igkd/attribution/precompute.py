"""Teacher logits and attribution maps for every training image, in dataset order.

Row i of the output belongs to training image i (the reference code looked rows up by
index after computing them over a shuffled, augmented loader). Images are processed
un-augmented, in order, in chunks; each finished chunk is flushed to `<out>.partial` and
counted in its `rows_done` attribute, so a killed job resumes from the last complete
chunk. The finished file is renamed into place.

Each row also gets the target logit's gain f_t(x) - f_t(0) and IG's completeness error:
signed `delta`, `abs_delta` and the guarded `rel_delta` (igkd.attribution.completeness); the file's
attrs hold their distribution. With `precompute.ig.method: trapezoid` the maps are refined
per image to `tolerance` (igkd.attribution.converged_ig) and each row also records the
points it ended on (`steps`), its error at the starting steps (`initial_rel_delta`) and
whether it is still above the tolerance at `max_steps` (`above_tolerance`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import torch

from igkd import registry
from igkd.attribution import completeness, converged_ig
from igkd.attribution.ig_memory import attribute_with_retry, choose_internal_batch
from igkd.io import InputError, commit, file_size, read_h5
from igkd.runtime import DEFAULT_RUNTIME, Runtime
from igkd.training.allocator import reuse_freed_memory
from igkd.training.amp import PRECISION, full_fp32
from igkd.training.augment import to_float

# 2: adds `gain` and `abs_delta`; `rel_delta` divides by max(|gain|, rel_floor) (1: by |gain|).
# 3: refined IG files add `steps`, `initial_rel_delta` and `above_tolerance`.
# `logits` and `maps`, all a student reads, are the same in all.
FORMAT_VERSION = 3
COMPLETENESS_KEYS = ("rel_floor", "report_tolerance")  # reporting settings, not the attribution's
REFINEMENT_KEYS = ("tolerance", "max_steps")  # converged_ig's; the fixed-steps path ignores them
REFINED_DTYPES = {"steps": "i4", "initial_rel_delta": "f4", "above_tolerance": "u1"}
REFINED_ROWS = tuple(REFINED_DTYPES)


@dataclass(frozen=True)
class AttributionJob:
    """Which attribution to compute and how (the config's `precompute` section)."""

    attribution: str
    settings: dict = field(default_factory=dict)  # attribution_settings: precompute.<attribution> (steps, method, ...)
    chunk: int = 256  # rows per flushed HDF5 chunk (the resume granularity)
    batch: int = 64  # images per attribution call
    seed: int = 0  # random draws (noise-based attributions), seeded per batch of images

    @classmethod
    def from_config(cls, section: dict, attribution: str) -> AttributionJob:
        settings = attribution_settings(section, attribution)
        return cls(attribution, settings, section["chunk"], section["batch_size"], section["seed"])


def attribution_settings(section: Mapping, attribution: str) -> dict:
    """The settings attribution `attribution` runs with, from config `precompute` (`section`):
    igkd's own take precompute.<name>; a plugin's take the defaults it registered, merged with
    precompute.plugin_settings.<name> (the config's keys win). InputError for an unknown name."""
    known_attribution(attribution)
    try:
        return registry.attribution_settings(section, attribution)
    except ValueError as err:
        raise InputError(str(err)) from err


def known_attribution(attribution: str, where: str = "attribution") -> registry.Attribution:
    """The registry's entry of `attribution` (igkd.registry.attribution, which loads the
    plugins first), or a one-line InputError listing the known names."""
    try:
        return registry.attribution(attribution)
    except ValueError:
        raise InputError(f"{where} {attribution!r} unknown; expected one of {sorted(registry.ATTRIBUTIONS)}") from None


@dataclass(frozen=True)
class Records:
    """What a precompute file records about its origin. `provenance` (data and teacher
    checksums, loader settings) is part of the file's identity: a partial file resumes only
    under the same. `environment` (library versions, device) is stored as `env_*` attrs
    and never decides a resume."""

    provenance: dict = field(default_factory=dict)
    environment: dict | None = None


NO_RECORDS = Records()


def records_for(splits, teacher, runtime: Runtime) -> Records:
    """The records of a precompute over `splits` with `teacher` (a TrainedTeacher) on this job's device."""
    from igkd.training.loop import environment

    return Records(teacher.provenance(splits), environment(runtime.device, runtime.threads))


def precompute(
    teacher,
    images: np.ndarray,
    labels: np.ndarray,
    out_path: str | os.PathLike,
    job: AttributionJob,
    runtime: Runtime = DEFAULT_RUNTIME,
    records: Records = NO_RECORDS,
) -> dict:
    """Write logits (N,K), maps (N,H,W), gain, delta, abs_delta and rel_delta (N,) to `out_path`.

    `teacher` is a TrainedTeacher (its model and input normalisation are used). The job's
    settings may hold `rel_floor` and `report_tolerance` (igkd.attribution.completeness;
    defaults there); the rest goes to the attribution (igkd.registry; the maps are stored at
    the images' resolution, a layer-resolution attribution upsampled by to_map)."""
    from igkd.attribution.maps import inference_copy, to_map  # captum: only the precompute stage needs it

    attribution, settings, batch, seed = job.attribution, job.settings, job.batch, job.seed
    chunk = whole_batches(job.chunk, batch)
    device, log = runtime.device, runtime.log
    attributor = registry.resolve(known_attribution(attribution).fn)
    floor = completeness.check_floor(settings.get("rel_floor", completeness.DEFAULT_REL_FLOOR))
    refinement = _refinement(attribution, settings, floor)
    tolerance = float(settings.get("report_tolerance", completeness.DEFAULT_TOLERANCE))
    if refinement is not None and refinement.tolerance is not None:
        tolerance = refinement.tolerance  # the log and attrs report the fraction within the target
    settings = {k: v for k, v in settings.items() if k not in COMPLETENESS_KEYS + REFINEMENT_KEYS}
    if refinement is not None:
        settings.update(tolerance=refinement.tolerance, max_steps=refinement.max_steps)
    out_path = Path(out_path)
    partial = out_path.with_name(out_path.name + ".partial")
    n, height, width, _ = images.shape
    reuse_freed_memory()  # no page faults for each pass's activations (see igkd.training.allocator)
    norm = teacher.norm
    teacher = inference_copy(teacher.model).to(device)  # BatchNorm folded, frozen: the caller's model is untouched
    with torch.inference_mode():
        zero_logits = teacher(torch.zeros(1, 3, height, width, device=device))[0]
        num_classes = zero_logits.numel()
    attrs = {
        "format_version": FORMAT_VERSION,
        "attribution": attribution,
        "rows": n,
        "chunk": chunk,
        "seed": seed,
        "rel_delta_floor": floor,  # rel_delta rows depend on it: a partial file with another floor restarts
        **{f"setting_{k}": v for k, v in settings.items() if v is not None},
        **records.provenance,
    }
    extra_rows = REFINED_ROWS if refinement is not None else ()
    h5 = _open_partial(partial, attrs, (n, num_classes, height, width, chunk), extra_rows, log)
    for key, value in (records.environment or {}).items():
        h5.attrs[f"env_{key}"] = str(value) if isinstance(value, str) else value  # str subclasses (torch.__version__)
    h5.attrs["precision"] = PRECISION
    points = _points_per_call(attribution, settings, batch)
    if refinement is not None:
        points = refinement.max_steps * batch
    internal = choose_internal_batch(settings.get("internal_batch_size"), points, teacher, (height, width), device, log)
    generator = torch.Generator()
    start = int(h5.attrs["rows_done"])
    if start:
        log(f"precompute: resuming {partial} at row {start}/{n}")
    began = time.time()
    # One device-to-host copy per chunk (not four per batch); the chunk is written to disk
    # by a second thread while the next chunk's kernels run.
    with full_fp32(device), ThreadPoolExecutor(max_workers=1) as writer:
        pending = None
        for lo in range(start, n, chunk):
            hi = min(lo + chunk, n)
            parts = []
            for b_lo in range(lo, hi, batch):
                b_hi = min(b_lo + batch, hi)
                seed_draws(generator, seed + b_lo)
                x = norm(to_float(_batch_to_device(images[b_lo:b_hi], device)))
                target = torch.as_tensor(labels[b_lo:b_hi]).to(device, non_blocking=True)
                with torch.inference_mode():
                    logits = teacher(x)
                signed_gain = logits.gather(1, target[:, None])[:, 0] - zero_logits[target]
                if refinement is not None:  # attributed below, the whole chunk at once
                    parts.append((x, target, logits.float(), signed_gain.float()))
                    continue
                # IG's completeness error from these logits: no extra forward passes in captum
                extra = {"generator": generator, "endpoint_gain": signed_gain}
                (attr, delta), internal = attribute_with_retry(
                    lambda k: attributor(teacher, x, target, {**settings, "internal_batch_size": k, **extra}),
                    internal,
                    points,
                    log,
                )
                parts.append(
                    (
                        logits.float(),
                        to_map(attr.detach(), (height, width)).float(),
                        signed_gain.float(),
                        delta.detach().float(),
                    )
                )
            if refinement is not None:
                rows, internal = _refined_rows(teacher, parts, refinement, internal, points, log)
            else:
                logits_c, maps_c, gain_c, delta_c = (torch.cat(p).cpu().numpy() for p in zip(*parts))
                rows = {"logits": logits_c, "maps": maps_c, "gain": gain_c, "delta": delta_c}
            if pending is not None:
                pending.result()  # the previous chunk is on disk (and its error, if any, raised here)
            pending = writer.submit(_write_chunk, h5, lo, hi, rows, floor)
            rate = (hi - start) / max(time.time() - began, 1e-9)
            log(f"precompute {attribution}: {hi}/{n} images, {rate:.1f} img/s, ETA {(n - hi) / rate:.0f} s")
        if pending is not None:
            pending.result()
    h5.attrs["internal_batch_size_used"] = internal if internal is not None else points
    summary = completeness.summarize(h5["delta"][()], h5["gain"][()], floor=floor, tolerance=tolerance)
    if refinement is not None:
        summary.update(converged_ig.summarize_steps(h5["steps"][()], h5["above_tolerance"][()], refinement))
        log(f"precompute {attribution}: {converged_ig.format_steps(summary)}")
    for key, value in summary.items():
        h5.attrs[key] = value
    h5.close()
    commit(partial, out_path)
    log(f"precompute {attribution}: wrote {out_path} ({file_size(out_path)})")
    return summary


def whole_batches(chunk: int, batch: int) -> int:
    """The chunk rounded up to whole batches: every batch then starts at a multiple of
    `batch`, whatever the chunk, so the draws seeded per batch do not depend on it (the
    chunk only sets how often rows are flushed, the resume granularity)."""
    return -(-chunk // batch) * batch


def seed_draws(generator: torch.Generator, seed: int) -> None:
    """Seed the random draws of the batch starting at row `seed - precompute.seed`: the
    `random` maps' generator and torch's global one, which captum's noise tunnels
    (smoothgrad, gradientshap) draw from. Per batch, so a resumed run draws what an
    uninterrupted one did."""
    generator.manual_seed(seed)
    torch.manual_seed(seed)


def _refinement(attribution: str, settings: dict, floor: float) -> converged_ig.Refinement | None:
    """The refinement of `precompute.ig.method: trapezoid`; None for the captum quadratures,
    which take no tolerance (a config with one is refused, not silently run at fixed steps)."""
    if attribution != "ig":
        return None
    if settings.get("method") == converged_ig.QUADRATURE:
        return converged_ig.Refinement.from_settings(settings, floor)
    if settings.get("tolerance") is not None:
        raise InputError(
            f"precompute.ig.tolerance: refining to a tolerance needs nested grids, precompute.ig.method: "
            f"{converged_ig.QUADRATURE} (got {settings.get('method', 'gausslegendre')!r}); or set tolerance: null"
        )
    return None


def _refined_rows(teacher, parts, refinement, internal, points, log) -> tuple[dict, int | None]:
    """One chunk's rows by converged_ig, all its images pooled (fuller passes than per batch)."""
    from igkd.attribution.maps import to_map

    x, target, logits, gain = (torch.cat(p) for p in zip(*parts))
    result, internal = attribute_with_retry(
        lambda k: converged_ig.refined_ig(teacher, x, target, gain, refinement, k), internal, points, log
    )
    delta, initial = (d.detach().float().cpu().numpy() for d in (result.delta, result.initial_delta))
    gain = gain.cpu().numpy()
    _, initial_rel = completeness.errors(initial, gain, refinement.floor)
    _, final_rel = completeness.errors(delta, gain, refinement.floor)
    rows = {
        "logits": logits.cpu().numpy(),
        "maps": to_map(result.attr.detach(), x.shape[-2:]).float().cpu().numpy(),
        "gain": gain,
        "delta": delta,
        "steps": result.steps.cpu().numpy(),
        "initial_rel_delta": initial_rel,
        "above_tolerance": refinement.above(final_rel),
    }
    return rows, internal


def _write_chunk(h5, lo, hi, rows: dict, floor) -> None:
    """Rows lo..hi (dataset name -> array), then `rows_done` (so a killed job resumes after the last whole chunk)."""
    abs_rows, rel_rows = completeness.errors(rows["delta"], rows["gain"], floor)
    for name, values in {**rows, "abs_delta": abs_rows, "rel_delta": rel_rows}.items():
        h5[name][lo:hi] = values
    h5.attrs["rows_done"] = hi
    h5.flush()


def _points_per_call(attribution: str, settings: dict, batch: int) -> int:
    """Forward/backward points one attribution call of `batch` images needs."""
    per_image = settings.get("steps") if attribution == "ig" else settings.get("samples", 1)
    return int(per_image or 1) * batch


def _batch_to_device(images_nhwc: np.ndarray, device: str) -> torch.Tensor:
    """uint8 (B,H,W,3) rows -> (B,3,H,W) on the device; on CUDA a pinned, asynchronous copy
    of the uint8 bytes (a quarter of the float batch)."""
    batch = torch.from_numpy(np.ascontiguousarray(images_nhwc)).permute(0, 3, 1, 2)
    if torch.device(device).type == "cuda":
        return batch.pin_memory().to(device, non_blocking=True)
    return batch.to(device)


def _open_partial(partial: Path, attrs: dict, shape: tuple, extra_rows: tuple, log) -> h5py.File:
    """Reopen a matching partial file, or start a fresh one. `shape` = (rows, classes, height,
    width, chunk); `extra_rows` names the refined path's per-row datasets (REFINED_ROWS)."""
    n, num_classes, height, width, chunk = shape
    if partial.exists():
        try:
            h5 = h5py.File(partial, "r+")
            same = all(_same(h5.attrs.get(k), v) for k, v in attrs.items())
            if same:
                return h5
            h5.close()
            log(f"precompute: {partial} was made with other settings; starting over")
        except OSError:
            log(f"precompute: {partial} is unreadable; starting over")
        partial.unlink()
    partial.parent.mkdir(parents=True, exist_ok=True)
    h5 = h5py.File(partial, "w")
    rows = min(chunk, n)
    h5.create_dataset("logits", (n, num_classes), "f4", chunks=(rows, num_classes))
    h5.create_dataset("maps", (n, height, width), "f4", chunks=(rows, height, width))
    for name in ("gain", "delta", "abs_delta", "rel_delta"):
        h5.create_dataset(name, (n,), "f4", chunks=(rows,))
    for name in extra_rows:
        h5.create_dataset(name, (n,), REFINED_DTYPES[name], chunks=(rows,))
    for key, value in attrs.items():
        h5.attrs[key] = value
    h5.attrs["rows_done"] = 0
    return h5


def _same(stored, value) -> bool:
    if stored is None:
        return False
    if isinstance(stored, bytes):
        stored = stored.decode()
    return bool(np.all(np.asarray(stored) == np.asarray(value)))


class Precomputed:
    """Validated, in-memory view of a precompute file for the rows of one dataset.

    `above_tolerance` (uint8 per row) flags the maps a refined IG file could not bring
    within its tolerance; None for files without refinement (every map counts as converged)."""

    def __init__(self, logits: np.ndarray, maps: np.ndarray, attrs: dict, above_tolerance=None) -> None:
        self.logits = logits
        self.maps = maps
        self.attrs = attrs
        self.above_tolerance = above_tolerance


def load_precomputed_for(path: str | os.PathLike, splits, teacher_checksum: str | None = None) -> Precomputed:
    """`load_precomputed`, checked against this job's training set (rows, image size,
    classes, data checksum) and, when given, the teacher's checksum."""
    return load_precomputed(
        path,
        n_rows=len(splits.train_labels),
        image_shape=splits.train_images.shape[1:3],
        num_classes=len(splits.classes),
        data_checksum=splits.checksum(),
        teacher_checksum=teacher_checksum,
    )


def load_precomputed(
    path: str | os.PathLike,
    *,
    n_rows: int,
    image_shape: tuple[int, int],
    num_classes: int,
    data_checksum: str | None = None,
    teacher_checksum: str | None = None,
) -> Precomputed:
    """Load and check a precompute file against the dataset and teacher it must belong to."""
    path = Path(path)
    with read_h5(path, "precompute file") as h5:
        attrs = {k: h5.attrs[k] for k in h5.attrs}
        version = int(attrs.get("format_version", 1))
        if version > FORMAT_VERSION:
            raise InputError(
                f"{path}: format_version {version}, expected at most {FORMAT_VERSION} (written by a newer igkd)"
            )
        for name in ("logits", "maps"):
            if name not in h5:
                raise InputError(f"{path}: dataset '{name}' missing")
        logits, maps = h5["logits"], h5["maps"]
        if logits.shape != (n_rows, num_classes):
            raise InputError(f"{path}: 'logits' has shape {logits.shape}, expected {(n_rows, num_classes)}")
        if maps.shape != (n_rows, *image_shape):
            raise InputError(f"{path}: 'maps' has shape {maps.shape}, expected {(n_rows, *image_shape)}")
        for name, ds in (("logits", logits), ("maps", maps)):
            if ds.dtype != np.float32:
                raise InputError(f"{path}: '{name}' has dtype {ds.dtype}, expected float32")
        if int(attrs.get("rows_done", -1)) != n_rows:
            raise InputError(f"{path}: only {attrs.get('rows_done')} of {n_rows} rows were computed")
        logits, maps = logits[()], maps[()]
        above = h5["above_tolerance"][()] if "above_tolerance" in h5 else None
        if above is not None and above.shape != (n_rows,):
            raise InputError(f"{path}: 'above_tolerance' has shape {above.shape}, expected {(n_rows,)}")
    for key, expected in (("data_checksum", data_checksum), ("teacher_checksum", teacher_checksum)):
        if expected is not None and str(attrs.get(key)) != expected:
            raise InputError(
                f"{path}: built from a different {key.split('_')[0]} ({key} {attrs.get(key)!s:.12}... "
                f"!= expected {expected:.12}...); rerun the precompute stage"
            )
    if not np.isfinite(logits).all() or not np.isfinite(maps).all():
        raise InputError(f"{path}: contains non-finite logits or maps")
    return Precomputed(logits, maps, attrs, above)
