"""IG precompute throughput and completeness error: the reference code's captum loop vs igkd's precompute.

- reference: captum IntegratedGradients per batch of 8 images, 50 Gauss-Legendre steps,
  no internal_batch_size (all 400 interpolation points in one pass), captum's own
  convergence delta, a separate no-grad forward for the teacher logits, the teacher in
  its default (contiguous) layout; nothing written to disk. It runs in its own worker
  process (as the reference script would), so igkd's process-wide allocator setting
  (igkd.allocator) does not reach it.
- igkd: igkd.precompute.precompute on the same images with the same steps and quadrature
  (so the same completeness error, up to float rounding), writing the HDF5 file: teacher
  copy with BatchNorm folded into the convs and frozen, channels-last, captum with an
  internal batch (interpolation points per pass), logits under inference_mode and the
  completeness error from those logits instead of captum's two extra forwards.

Besides the reference's own setting, igkd can run the setting benchmarks/ig_steps.py
chose by measured error (`--ours METHOD:STEPS:INTERNAL_BATCH`, several allowed); the
acceptance test is speed at equal or lower mean completeness error than the reference.

Both see the same images; each repeat is one batch of `--images`, cases take turns.
Relative completeness error: |sum(attr) - (f_t(x) - f_t(0))| / |f_t(x) - f_t(0)| per image.
Run: `.venv/bin/python benchmarks/ig_precompute.py [--cases cifar digits] [--repeats 3]`.
"""

from __future__ import annotations

import argparse
import copy
import multiprocessing
import os
import tempfile

import h5py
import numpy as np
import torch
from captum.attr import IntegratedGradients

from _common import PeakMemory, format_table, machine_line, run_interleaved, setup
from _teachers import load_case
from igkd.precompute import precompute

REFERENCE_BATCH = 8
# igkd's settings per case when --ours is not given: the paper's quadrature with the
# internal batch that ran fastest here, and for digits also the setting ig_steps.py chose.
DEFAULT_OURS = {
    "cifar": ["gausslegendre:50:64"],
    "digits": ["gausslegendre:50:256", "riemann_trapezoid:32:256"],
}


def parse_setting(text: str) -> dict:
    method, steps, internal = text.split(":")
    return {"method": method, "steps": int(steps), "internal_batch_size": int(internal)}


def reference_loop(teacher, case, rows: slice, steps: int, device: str) -> tuple[np.ndarray, np.ndarray]:
    """The reference code's way: captum per batch of 8, default internal batch. Returns maps, rel. error."""
    ig = IntegratedGradients(teacher)
    zero = teacher(torch.zeros(1, 3, *case.images.shape[1:3], device=device))[0].detach()
    maps, rel = [], []
    for lo in range(rows.start, rows.stop, REFERENCE_BATCH):
        x, target = case.batch(slice(lo, min(lo + REFERENCE_BATCH, rows.stop)), device)
        attr, delta = ig.attribute(
            x, baselines=torch.zeros_like(x), target=target, n_steps=steps, return_convergence_delta=True
        )
        with torch.no_grad():
            logits = teacher(x)
        gain = (logits.gather(1, target[:, None])[:, 0] - zero[target]).abs()
        maps.append(attr.detach().abs().sum(1).cpu().numpy())
        rel.append((delta.detach().abs() / gain.clamp_min(1e-12)).cpu().numpy())
    return np.concatenate(maps), np.concatenate(rel)


_WORKER: dict = {}


def _worker_init(name: str, weights: str, threads: int, steps: int, device: str) -> None:
    torch.set_num_threads(threads)
    case = load_case(name, weights, log=lambda message: None)
    _WORKER.update(case=case, teacher=case.teacher.to(device).eval(), steps=steps, device=device)


def _worker_run(start: int, stop: int):
    """One reference repeat in the worker; returns maps, relative errors and its peak memory."""
    memory = PeakMemory(_WORKER["device"])
    memory.reset()
    maps, rel = reference_loop(_WORKER["teacher"], _WORKER["case"], slice(start, stop), _WORKER["steps"], _WORKER["device"])
    return maps, rel, memory.read()


def igkd_precompute(teacher, case, rows: slice, settings: dict, batch: int, device: str, folder: str):
    path = os.path.join(folder, f"ig_{rows.start}.h5")
    precompute(
        teacher,
        case.images[rows],
        case.labels[rows],
        path,
        attribution="ig",
        settings=settings,
        mean=case.mean,
        std=case.std,
        provenance={},
        chunk=max(batch, 1),
        batch=batch,
        device=device,
        log=lambda message: None,
    )
    with h5py.File(path) as h5:
        maps, rel = h5["maps"][()], h5["rel_delta"][()]
    os.remove(path)
    return maps, rel


def bench_case(case, args, device: str) -> list[dict]:
    worker = multiprocessing.get_context("spawn").Pool(
        1, _worker_init, (case.name, args.cifar_weights, args.threads, args.steps, device)
    )
    reference_peak: dict = {}
    ours_teacher = copy.deepcopy(case.teacher).use_channels_last(args.channels_last)
    outputs = {}
    cases = {}
    folder = tempfile.mkdtemp(prefix="igkd_bench_")

    def rows_for(repeat: int) -> slice:
        lo = (repeat + args.warmup) * args.images  # warm-up repeats (negative) use the first rows
        return slice(lo, lo + args.images)

    def reference(repeat: int) -> int:
        rows = rows_for(repeat)
        maps, rel, peak = worker.apply(_worker_run, (rows.start, rows.stop))
        outputs.setdefault("reference", {})[repeat] = (maps, rel)
        if repeat >= 0:
            for key, value in peak.items():
                reference_peak[key] = max(reference_peak.get(key, 0.0), value)
        return args.images

    cases[f"reference: captum GL {args.steps}, batch {REFERENCE_BATCH}, no internal batch"] = reference
    keys = ["reference"]
    for text in args.ours or DEFAULT_OURS[case.name]:
        settings = parse_setting(text)

        def ours(repeat: int, settings=settings, key=text) -> int:
            rows = rows_for(repeat)
            outputs.setdefault(key, {})[repeat] = igkd_precompute(
                ours_teacher, case, rows, settings, args.batch, device, folder
            )
            return args.images

        label = "GL" if settings["method"] == "gausslegendre" else settings["method"]
        cases[f"igkd: {label} {settings['steps']}, batch {args.batch}, internal batch {settings['internal_batch_size']}"] = ours
        keys.append(text)
    needed = (args.repeats + args.warmup) * args.images
    if needed > len(case.images):
        raise SystemExit(f"{case.name}: {needed} images needed, {len(case.images)} available")
    results = run_interleaved(cases, repeats=args.repeats, warmup=args.warmup, device=device)
    worker.close()
    worker.join()
    os.rmdir(folder)
    next(iter(results.values()))["peak"] = reference_peak  # the worker's, not the idle main process's

    reference_maps = np.concatenate([outputs["reference"][r][0] for r in range(args.repeats)])
    rows = []
    base_rate = None
    for (label, result), key in zip(results.items(), keys):
        maps = np.concatenate([outputs[key][r][0] for r in range(args.repeats)])
        rel = np.concatenate([outputs[key][r][1] for r in range(args.repeats)])
        base_rate = base_rate or result["median"]
        distance = np.abs(maps - reference_maps).sum((1, 2)) / np.abs(reference_maps).sum((1, 2)).clip(1e-12)
        rows.append(
            {
                "case": case.name,
                "method": label,
                "images/s (median)": result["median"],
                "min": result["low"],
                "max": result["high"],
                "x reference": result["median"] / base_rate,
                "rel err mean": float(rel.mean()),
                "rel err max": float(rel.max()),
                "map L1 diff vs ref": float(distance.mean()),
                **result["peak"],
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
    columns = ["case", "method", "images/s (median)", "min", "max", "x reference", "rel err mean", "rel err max"]
    columns += ["map L1 diff vs ref", *[k for k in rows[0] if k.startswith("peak")]]
    print(format_table(rows, columns))
    print("map L1 diff vs ref: mean over the images of |map - reference map|_1 / |reference map|_1")


if __name__ == "__main__":
    main()
