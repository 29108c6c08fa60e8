"""Adaptive (converged) IG against fixed-steps IG: speed and completeness error on the same images.

Same images (the case's first `--images` training images, target = label), same teacher,
one run, each path in its own process (spawned one after another, so allocator settings,
warm caches and peak memory stay each path's own):

- (a) reference: captum IntegratedGradients.attribute as the reference code ran it, on
  the unfolded eval teacher (BatchNorm as is, contiguous layout), 50 Gauss-Legendre
  steps, batches of 8, internal_batch_size=None (all 400 points in one pass),
  return_convergence_delta=True (captum's own two extra forwards), zero baseline in
  normalised space, plus a no-grad forward per batch for the logits; nothing written.
- (b) igkd fixed: igkd.attribution.precompute.precompute with 50 Gauss-Legendre steps
  (BatchNorm folded, channels-last, internal batch `auto`).
- (c) igkd adaptive: the same precompute with `method: trapezoid`: every image starts on
  `--start-steps` points and is refined (igkd.attribution.converged_ig) until its error is
  within `--tolerance` or the next grid would pass `--max-steps`.

The timed span is the attribution work only (model and images are loaded before it):
(a) its loop over the batches, (b) and (c) the whole precompute call, which includes
writing the HDF5 file into a temporary directory (logits, maps, per-row errors). Each path
first runs untimed on the first WARMUP_IMAGES images (kernels, allocator, CUDA context). All three run in
IEEE float32 (TF32 off on CUDA), so their errors differ by quadrature, not precision.

The error per image is the guarded relative completeness error of
igkd.attribution.completeness, |sum(attr) - (f_t(x) - f_t(0))| / max(|f_t(x) - f_t(0)|,
rel_floor), computed the same way with the same floor for all three (the adaptive path
also refines against that floor). "within" is the fraction of images with error <=
`--tolerance`; "points/image" the gradient evaluations per image (the adaptive grids are
nested, so an image ending on n points cost n).

Run: `.venv/bin/python benchmarks/ig_convergence.py --case digits` (the demo's trained
teacher, results/digits) or `--case cifar` (the width-1.0 CIFAR MobileNetV2, briefly
trained, benchmarks/_teachers.py). Reading it: the adaptive path pays off where its time
ratios are below 1 and its `within` is at least the fixed paths'; a `within` below 1 means
some images were still above the tolerance at `--max-steps`. One run on a quiet machine:
the three paths run one after another, so load from other processes skews the ratios.
The last line is machine-readable:
`adaptive: within=<fraction> time_vs_reference=<ratio> time_vs_fixed50=<ratio>`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np
from _common import format_table, machine_line, setup, sync
from _teachers import load_case
from ig_precompute import REFERENCE_BATCH, reference_loop

from igkd.attribution import completeness, converged_ig
from igkd.attribution.precompute import AttributionJob, precompute
from igkd.runtime import Runtime
from igkd.training.amp import full_fp32
from igkd.training.augment import InputNorm
from igkd.training.teacher import TrainedTeacher

REFERENCE_STEPS = 50  # the paper's Gauss-Legendre steps, for (a) and (b)
FIXED = {"method": "gausslegendre", "steps": REFERENCE_STEPS, "internal_batch_size": "auto"}
CHUNK = 256  # precompute rows per flushed HDF5 chunk (the adaptive path pools a chunk's images)
BATCH = 32  # precompute images per attribution call
SEED = 0
DEFAULT_IMAGES = {"digits": 256, "cifar": 64}
WARMUP_IMAGES = 2  # untimed run of each path first (0: none)
PATHS = ("a", "b", "c")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_reference(case, n: int, device: str) -> dict:
    """(a): captum's loop on the unfolded teacher; delta is captum's own."""
    teacher = case.teacher.to(device)
    with full_fp32(device):
        if WARMUP_IMAGES:
            reference_loop(teacher, case, slice(0, min(WARMUP_IMAGES, n)), REFERENCE_STEPS, device)
        sync(device)
        began = time.perf_counter()
        _, delta, gain = reference_loop(teacher, case, slice(0, n), REFERENCE_STEPS, device)
        sync(device)
        seconds = time.perf_counter() - began
    return {
        "seconds": seconds,
        "delta": delta,
        "gain": gain,
        "points": np.full(n, REFERENCE_STEPS),
        "method": f"reference: captum GL {REFERENCE_STEPS}, batch {REFERENCE_BATCH}, no internal batch",
    }


def run_precompute(case, n: int, settings: dict, device: str, threads: int) -> dict:
    """(b) or (c): igkd's precompute into a temporary file; the error rows read back after timing."""
    trained = TrainedTeacher(
        case.teacher.use_channels_last(True),
        InputNorm(tuple(case.mean), tuple(case.std)),
        "benchmark",
        sum(p.numel() for p in case.teacher.parameters()),
    )
    job = AttributionJob("ig", settings, chunk=CHUNK, batch=BATCH, seed=SEED)
    runtime = Runtime(device, threads, True, log=_log)
    with tempfile.TemporaryDirectory(prefix="igkd_convergence_") as folder:
        if WARMUP_IMAGES:
            rows = slice(0, min(WARMUP_IMAGES, n))
            warmup = Runtime(device, threads, True, log=lambda message: None)
            precompute(trained, case.images[rows], case.labels[rows], os.path.join(folder, "warmup.h5"), job, warmup)
        out = os.path.join(folder, "ig.h5")
        sync(device)
        began = time.perf_counter()
        precompute(trained, case.images[:n], case.labels[:n], out, job, runtime)
        sync(device)
        seconds = time.perf_counter() - began
        with h5py.File(out) as h5:
            delta, gain = h5["delta"][()], h5["gain"][()]
            points = h5["steps"][()] if "steps" in h5 else np.full(n, settings["steps"])
            internal = h5.attrs["internal_batch_size_used"]
    if settings["method"] == converged_ig.QUADRATURE:
        method = (
            f"igkd adaptive: trapezoid {settings['steps']}..{settings['max_steps']} points, "
            f"tolerance {settings['tolerance']:g}, internal batch {internal}"
        )
    else:
        method = f"igkd fixed: GL {settings['steps']}, internal batch {internal}"
    return {"seconds": seconds, "delta": delta, "gain": gain, "points": points, "method": method}


def child(args) -> None:
    """One path in this process; prints one JSON line on stdout (all else goes to stderr)."""
    device = setup(args.threads, args.device)
    case = load_case(args.case, log=_log)
    n = args.images
    if n > len(case.images):
        raise SystemExit(f"--images {n}: the {args.case} case has only {len(case.images)} images")
    floor = completeness.check_floor(args.rel_floor)
    if args.path == "a":
        result = run_reference(case, n, device)
    else:
        settings = {**FIXED, "rel_floor": floor, "report_tolerance": args.tolerance}
        if args.path == "c":
            settings.update(
                method=converged_ig.QUADRATURE,
                steps=args.start_steps,
                tolerance=args.tolerance,
                max_steps=args.max_steps,
            )
        result = run_precompute(case, n, settings, device, args.threads)
    _, relative = completeness.errors(result["delta"], result["gain"], floor)
    line = {
        "path": args.path,
        "method": result["method"],
        "about": case.about,
        "images": n,
        "seconds": result["seconds"],
        "images_per_s": n / result["seconds"],
        "within": float(np.mean(relative <= args.tolerance)),
        "rel_median": float(np.median(relative)),
        "rel_max": float(relative.max()),
        "points_mean": float(np.mean(result["points"])),
    }
    print(json.dumps(line), flush=True)


def spawn(args, path: str, device: str) -> dict:
    """Run `path` in a fresh interpreter; its stderr passes through, its last stdout line is the result."""
    command = [sys.executable, os.path.abspath(__file__), "--path", path, "--case", args.case]
    command += ["--images", str(args.images), "--tolerance", repr(args.tolerance), "--rel-floor", repr(args.rel_floor)]
    command += ["--start-steps", str(args.start_steps), "--max-steps", str(args.max_steps)]
    command += ["--threads", str(args.threads), "--device", device]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise SystemExit(f"path ({path}) failed (exit {done.returncode}); its messages are above")
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", default="digits", choices=sorted(DEFAULT_IMAGES))
    parser.add_argument("--images", type=int, default=None, help=f"default: {DEFAULT_IMAGES}")
    parser.add_argument("--tolerance", type=float, default=completeness.DEFAULT_TOLERANCE, help="(c)'s target; within")
    parser.add_argument("--start-steps", type=int, default=17, help="(c): points every image starts with")
    parser.add_argument("--max-steps", type=int, default=1025, help="(c): most points an image gets")
    parser.add_argument(
        "--rel-floor", type=float, default=completeness.DEFAULT_REL_FLOOR, help="guard of the relative error (logits)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--path", choices=PATHS, default=None, help=argparse.SUPPRESS)  # set for the child processes
    args = parser.parse_args()
    if args.images is None:
        args.images = DEFAULT_IMAGES[args.case]
    if args.images < 1:
        raise SystemExit(f"--images: expected at least 1, got {args.images}")
    converged_ig.Refinement(args.start_steps, args.tolerance, args.max_steps, args.rel_floor)  # bad values: one line
    if args.path is not None:
        child(args)
        return
    device = setup(args.threads, args.device)
    print(machine_line(device, args.threads))
    results = {path: spawn(args, path, device) for path in PATHS}
    print(f"{args.case}: {results['a']['about']}; first {args.images} images, target = label, zero baseline")
    within = f"within {args.tolerance:g}"
    rows = [
        {
            "path": f"({path})",
            "method": r["method"],
            "seconds": r["seconds"],
            "images/s": r["images_per_s"],
            "points/image": r["points_mean"],
            within: r["within"],
            "rel err median": r["rel_median"],
            "rel err max": r["rel_max"],
        }
        for path, r in results.items()
    ]
    print(format_table(rows, list(rows[0])))
    print(f"relative error: {completeness.DEFINITION} (rel_floor {args.rel_floor:g})")
    vs_reference = results["c"]["seconds"] / results["a"]["seconds"]
    vs_fixed = results["c"]["seconds"] / results["b"]["seconds"]
    print(f"time ratios: (c)/(a) = {vs_reference:.3f}, (c)/(b) = {vs_fixed:.3f} (below 1: the adaptive path is faster)")
    adaptive = results["c"]["within"]
    print(f"adaptive: within={adaptive:.4f} time_vs_reference={vs_reference:.3f} time_vs_fixed50={vs_fixed:.3f}")


if __name__ == "__main__":
    main()
