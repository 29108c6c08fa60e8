"""IG precompute throughput and completeness error: the reference code's captum loop vs igkd's precompute.

- reference: captum IntegratedGradients per batch of 8 images, 50 Gauss-Legendre steps,
  no internal_batch_size (all 400 interpolation points in one pass), captum's own
  convergence delta, a separate no-grad forward for the teacher logits, the teacher in
  its default (contiguous) layout; nothing written to disk.
- igkd: igkd.attribution.precompute.precompute on the same images with the same steps and quadrature
  (so the same completeness error, up to float rounding), writing the HDF5 file: teacher
  copy with BatchNorm folded into the convs and frozen, channels-last, captum with an
  internal batch (interpolation points per pass), logits under inference_mode and the
  completeness error from those logits instead of captum's two extra forwards.

Besides the reference's own setting, igkd can run the setting benchmarks/ig_steps.py
chose by measured error (`--ours METHOD:STEPS:INTERNAL_BATCH`, several allowed); the
acceptance test is speed at equal or lower completeness error (median and p90) than the reference.

Both see the same images; each repeat is one batch of `--images`, cases take turns. Each
path runs in its own worker process, as separate scripts would: igkd's process-wide
allocator setting (igkd.training.allocator) does not reach the reference, and peak memory
(ru_maxrss, libraries included) is each path's own.
Relative completeness error per image, as the precompute stage stores it (igkd.attribution.completeness):
|sum(attr) - (f_t(x) - f_t(0))| / max(|f_t(x) - f_t(0)|, rel_floor), rel_floor 1 logit.
Run: `.venv/bin/python benchmarks/ig_precompute.py [--cases cifar digits] [--repeats 3]`.
"""

from __future__ import annotations

import argparse
import copy
import multiprocessing
import os
import shutil
import tempfile

import h5py
import numpy as np
import torch
from _common import PeakMemory, format_table, machine_line, run_interleaved, setup
from _teachers import load_case
from captum.attr import IntegratedGradients

from igkd.attribution import completeness
from igkd.attribution.precompute import AttributionJob, precompute
from igkd.runtime import Runtime
from igkd.training.augment import InputNorm
from igkd.training.teacher import TrainedTeacher

REFERENCE_BATCH = 8
# igkd's settings per case when --ours is not given: the reference's quadrature and steps
# (so the same completeness error) with an internal batch that ran fastest here.
DEFAULT_OURS = {"cifar": ["gausslegendre:50:64"], "digits": ["gausslegendre:50:256"]}


def parse_setting(text: str) -> dict:
    method, steps, internal = text.split(":")
    return {"method": method, "steps": int(steps), "internal_batch_size": int(internal)}


def reference_loop(teacher, case, rows: slice, steps: int, device: str) -> tuple[np.ndarray, np.ndarray]:
    """The reference code's way: captum per batch of 8, default internal batch. Returns maps,
    captum's signed completeness errors and the gains f_t(x) - f_t(0)."""
    ig = IntegratedGradients(teacher)
    zero = teacher(torch.zeros(1, 3, *case.images.shape[1:3], device=device))[0].detach()
    maps, deltas, gains = [], [], []
    for lo in range(rows.start, rows.stop, REFERENCE_BATCH):
        x, target = case.batch(slice(lo, min(lo + REFERENCE_BATCH, rows.stop)), device)
        attr, delta = ig.attribute(
            x, baselines=torch.zeros_like(x), target=target, n_steps=steps, return_convergence_delta=True
        )
        with torch.no_grad():
            logits = teacher(x)
        gain = logits.gather(1, target[:, None])[:, 0] - zero[target]
        maps.append(attr.detach().abs().sum(1).cpu().numpy())
        deltas.append(delta.detach().cpu().numpy())
        gains.append(gain.cpu().numpy())
    return np.concatenate(maps), np.concatenate(deltas), np.concatenate(gains)


_WORKER: dict = {}


def _worker_init(name: str, weights: str, threads: int, device: str, channels_last: bool, folder: str) -> None:
    torch.set_num_threads(threads)
    case = load_case(name, weights, log=lambda message: None)
    _WORKER.update(case=case, device=device, folder=tempfile.mkdtemp(dir=folder))
    _WORKER["reference"] = copy.deepcopy(case.teacher).to(device).eval()  # contiguous layout, BatchNorm as is
    _WORKER["ours"] = copy.deepcopy(case.teacher).use_channels_last(channels_last)


def _worker_run(path: str, start: int, stop: int, settings: dict, batch: int):
    """One repeat in this worker process; returns maps, completeness errors, gains and the process's peak memory."""
    memory = PeakMemory(_WORKER["device"])
    memory.reset()
    case, rows, device = _WORKER["case"], slice(start, stop), _WORKER["device"]
    if path == "reference":
        maps, delta, gain = reference_loop(_WORKER["reference"], case, rows, settings["steps"], device)
    else:
        maps, delta, gain = igkd_precompute(_WORKER["ours"], case, rows, settings, batch, device, _WORKER["folder"])
    return maps, delta, gain, memory.read()


def igkd_precompute(teacher, case, rows: slice, settings: dict, batch: int, device: str, folder: str):
    path = os.path.join(folder, f"ig_{rows.start}.h5")
    trained = TrainedTeacher(teacher, InputNorm(tuple(case.mean), tuple(case.std)), "benchmark", 0)
    job = AttributionJob("ig", settings, chunk=max(batch, 1), batch=batch)
    precompute(trained, case.images[rows], case.labels[rows], path, job, Runtime(device, log=lambda message: None))
    with h5py.File(path) as h5:
        maps, delta, gain = h5["maps"][()], h5["delta"][()], h5["gain"][()]
    os.remove(path)
    return maps, delta, gain


def bench_case(case, args, device: str) -> list[dict]:
    """Each path runs in its own worker process (spawned: clean allocator state and memory
    readings); the paths take turns, so only one computes at a time."""
    paths = {"reference": ("reference", {"steps": args.steps, "method": "gausslegendre"})}
    for text in args.ours or DEFAULT_OURS[case.name]:
        settings = parse_setting(text)
        label = "GL" if settings["method"] == "gausslegendre" else settings["method"]
        paths[text] = (
            f"igkd: {label} {settings['steps']}, batch {args.batch}, internal batch {settings['internal_batch_size']}",
            settings,
        )
    paths["reference"] = (
        f"reference: captum GL {args.steps}, batch {REFERENCE_BATCH}, no internal batch",
        paths["reference"][1],
    )
    needed = (args.repeats + args.warmup) * args.images
    if needed > len(case.images):
        raise SystemExit(f"{case.name}: {needed} images needed, {len(case.images)} available")
    context = multiprocessing.get_context("spawn")
    folder = tempfile.mkdtemp(prefix="igkd_bench_")
    init = (case.name, args.cifar_weights, args.threads, device, args.channels_last, folder)
    workers = {key: context.Pool(1, _worker_init, init) for key in paths}
    outputs: dict = {key: {} for key in paths}
    peaks: dict = {key: {} for key in paths}

    def make_case(key: str, settings: dict):
        def run(repeat: int) -> int:
            lo = (repeat + args.warmup) * args.images  # warm-up repeats (negative) use the first rows
            maps, delta, gain, peak = workers[key].apply(
                _worker_run, ("reference" if key == "reference" else "igkd", lo, lo + args.images, settings, args.batch)
            )
            outputs[key][repeat] = (maps, delta, gain)
            if repeat >= 0:
                for name, value in peak.items():
                    peaks[key][name] = max(peaks[key].get(name, 0.0), value)
            return args.images

        return run

    cases = {label: make_case(key, settings) for key, (label, settings) in paths.items()}
    results = run_interleaved(cases, repeats=args.repeats, warmup=args.warmup, device=device)
    for worker in workers.values():
        worker.close()
        worker.join()
    shutil.rmtree(folder)

    reference_maps = np.concatenate([outputs["reference"][r][0] for r in range(args.repeats)])
    rows = []
    base_rate = results[paths["reference"][0]]["median"]
    for key, (label, _) in paths.items():
        result = results[label]
        maps, delta, gain = (np.concatenate([outputs[key][r][i] for r in range(args.repeats)]) for i in range(3))
        errors = completeness.summarize(delta, gain)
        distance = np.abs(maps - reference_maps).sum((1, 2)) / np.abs(reference_maps).sum((1, 2)).clip(1e-12)
        rows.append(
            {
                "case": case.name,
                "method": label,
                "images/s (median)": result["median"],
                "min": result["low"],
                "max": result["high"],
                "x reference": result["median"] / base_rate,
                "rel err median": errors["rel_delta_median"],
                "p90": errors["rel_delta_p90"],
                "rel err max": errors["rel_delta_max"],
                "rel err mean": errors["rel_delta_mean"],
                f"within {errors['rel_delta_tolerance']:g}": errors["rel_delta_within"],
                "map L1 diff vs ref": float(distance.mean()),
                **peaks[key],
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", nargs="+", default=["cifar", "digits"], choices=["cifar", "digits"])
    parser.add_argument("--cifar-weights", default="brief", help="brief (default) | random | path to a state dict")
    parser.add_argument("--images", type=int, default=8, help="images per repeat (the reference: batches of 8)")
    parser.add_argument("--steps", type=int, default=50, help="the reference's Gauss-Legendre steps (paper: 50)")
    parser.add_argument("--batch", type=int, default=64, help="igkd: images per attribution call")
    parser.add_argument(
        "--ours",
        nargs="+",
        default=None,
        help="igkd settings METHOD:STEPS:INTERNAL_BATCH (default per case: " + str(DEFAULT_OURS) + ")",
    )
    parser.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    parser.add_argument("--threads", type=int, default=1, help="1: steadiest on a shared machine")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = setup(args.threads, args.device)
    print(machine_line(device, args.threads))
    print(
        f"zero baseline, target = label; {args.images} images per repeat, "
        f"{args.repeats} repeats after {args.warmup} warm-up, cases taking turns"
    )
    rows = []
    for name in args.cases:
        case = load_case(name, args.cifar_weights)
        print(f"{name}: {case.about}")
        rows += bench_case(case, args, device)
    columns = ["case", "method", "images/s (median)", "min", "max", "x reference", "rel err median", "p90"]
    columns += ["rel err max", "rel err mean", *[k for k in rows[0] if k.startswith("within")]]
    columns += ["map L1 diff vs ref", *[k for k in rows[0] if k.startswith("peak")]]
    print(format_table(rows, columns))
    print(f"relative error: {completeness.DEFINITION} (rel_floor {completeness.DEFAULT_REL_FLOOR:g})")
    print("map L1 diff vs ref: mean over the images of |map - reference map|_1 / |reference map|_1")


if __name__ == "__main__":
    main()
