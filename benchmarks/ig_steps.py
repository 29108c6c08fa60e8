"""Completeness error of IG against the number of steps and the quadrature: choose `precompute.ig.steps`.

For each quadrature and step count this computes IG for the same images the way the
precompute stage does (igkd.attribution.maps with the folded, channels-last teacher) and prints
the guarded relative completeness error of igkd.attribution.completeness,
|sum(attr) - (f_t(x) - f_t(0))| / max(|f_t(x) - f_t(0)|, rel_floor) (median, p90, p99, max,
mean over the images, the fraction within `--tolerance`, and the median absolute error in
logits), how far the maps are from the 50-step Gauss-Legendre maps (the paper's setting),
and the speed. Steps cost time linearly; the error usually falls with them, but not always
monotonically for a ReLU network.

The rule it prints: the fewest steps whose p90 relative error is at most `--target`
(default: the p90 of 50-step Gauss-Legendre on these images). The p90 rather than the mean
(a few images decide it) or the median (blind to the worst tenth). Put the steps you choose
in `precompute.ig.steps` (and the quadrature in `precompute.ig.method`); the precompute
stage stores every image's error, and its log reports the same statistics.

Run: `.venv/bin/python benchmarks/ig_steps.py --case digits` (the demo's trained teacher)
or `--case cifar` (the width-1.0 CIFAR teacher, briefly trained; slower).
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch
from _common import PeakMemory, format_table, machine_line, setup, sync
from _teachers import load_case

from igkd.attribution import completeness
from igkd.attribution.maps import inference_copy, integrated_gradients, to_map
from igkd.training.allocator import reuse_freed_memory

REFERENCE = ("gausslegendre", 50)


def run_setting(teacher, x, target, zero, method: str, steps: int, internal_batch: int, batch: int, device: str):
    """Maps, signed completeness errors and gains for all images, in batches as the precompute stage does."""
    maps, deltas, gains = [], [], []
    for lo in range(0, len(x), batch):
        xb, tb = x[lo : lo + batch], target[lo : lo + batch]
        with torch.inference_mode():
            logits = teacher(xb)
        gain = logits.gather(1, tb[:, None])[:, 0] - zero[tb]
        settings = {"steps": steps, "method": method, "internal_batch_size": internal_batch, "endpoint_gain": gain}
        attr, delta = integrated_gradients(teacher, xb, tb, settings)
        maps.append(to_map(attr, attr.shape[-2:]).cpu().numpy())
        deltas.append(delta.cpu().numpy())
        gains.append(gain.cpu().numpy())
    return np.concatenate(maps), np.concatenate(deltas), np.concatenate(gains)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", default="digits", choices=["digits", "cifar"])
    parser.add_argument("--cifar-weights", default="brief", help="brief (default) | random | path to a state dict")
    parser.add_argument("--images", type=int, default=None, help="default: 256 (digits), 16 (cifar)")
    parser.add_argument("--steps", type=int, nargs="+", default=[8, 16, 32, 50, 64])
    parser.add_argument("--methods", nargs="+", default=["gausslegendre", "riemann_trapezoid"])
    parser.add_argument(
        "--target", type=float, default=None, help="p90 relative error to reach (default: 50-step GL's)"
    )
    parser.add_argument(
        "--rel-floor", type=float, default=completeness.DEFAULT_REL_FLOOR, help="precompute.ig.rel_floor (logits)"
    )
    parser.add_argument(
        "--tolerance", type=float, default=completeness.DEFAULT_TOLERANCE, help="precompute.ig.report_tolerance"
    )
    parser.add_argument("--internal-batch-size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="1: steadiest on a shared machine")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = setup(args.threads, args.device)
    reuse_freed_memory()  # as the precompute stage does
    case = load_case(args.case, args.cifar_weights)
    n = args.images or (256 if args.case == "digits" else 16)
    teacher = inference_copy(copy.deepcopy(case.teacher).use_channels_last(True)).to(device)
    x, target = case.batch(slice(0, n), device)
    with torch.inference_mode():
        zero = teacher(torch.zeros_like(x[:1]))[0]
    print(machine_line(device, args.threads))
    print(f"{args.case}: {case.about}; {n} images, internal batch {args.internal_batch_size}")

    settings = sorted({REFERENCE, *((m, s) for m in args.methods for s in args.steps)}, key=lambda t: (t[0], t[1]))
    run_setting(teacher, x[:2], target[:2], zero, "gausslegendre", 2, args.internal_batch_size, args.batch, device)
    memory = PeakMemory(device)
    outputs = {}
    for method, steps in settings:
        memory.reset()
        sync(device)
        began = time.perf_counter()
        outputs[(method, steps)] = run_setting(
            teacher, x, target, zero, method, steps, args.internal_batch_size, args.batch, device
        )
        sync(device)
        outputs[(method, steps)] += (n / (time.perf_counter() - began), memory.read())  # maps, delta, gain, rate, peak

    summaries = {
        key: completeness.summarize(delta, gain, floor=args.rel_floor, tolerance=args.tolerance)
        for key, (_, delta, gain, _, _) in outputs.items()
    }
    reference_maps, reference = outputs[REFERENCE][0], summaries[REFERENCE]
    target_error = args.target if args.target is not None else reference["rel_delta_p90"]
    within = f"within {args.tolerance:g}"
    rows = []
    for (method, steps), (maps, _, _, rate, peak) in outputs.items():
        distance = np.abs(maps - reference_maps).sum((1, 2)) / np.abs(reference_maps).sum((1, 2)).clip(1e-12)
        summary = summaries[(method, steps)]
        rows.append(
            {
                "method": method,
                "steps": steps,
                "rel err median": summary["rel_delta_median"],
                "p90": summary["rel_delta_p90"],
                "p99": summary["rel_delta_p99"],
                "max": summary["rel_delta_max"],
                "mean": summary["rel_delta_mean"],
                within: summary["rel_delta_within"],
                "abs err median": summary["abs_delta_median"],
                "map L1 diff vs GL50": float(distance.mean()),
                "images/s": rate,
                **peak,
            }
        )
    print(format_table(rows, list(rows[0])))
    print(f"relative error: {completeness.DEFINITION}")
    print(
        f"rel_floor {args.rel_floor:g} logit: {reference['rel_delta_floored']:.1%} of the images have "
        f"|f_t(x) - f_t(0)| below it; {within}: fraction of images with relative error <= {args.tolerance:g}"
    )
    print("map L1 diff vs GL50: mean over images of |map - map_GL50|_1 / |map_GL50|_1")
    print(
        f"rule: fewest steps with p90 relative error <= {target_error:.4g}"
        + (" (50-step GL)" if args.target is None else "")
    )
    for method in args.methods:
        ok = [r for r in rows if r["method"] == method and r["p90"] <= target_error]
        if ok:
            best = min(ok, key=lambda r: r["steps"])
            print(
                f"  {method}: {best['steps']} steps (median {best['rel err median']:.4g}, p90 {best['p90']:.4g}, "
                f"max {best['max']:.4g}; 50-step GL: median {reference['rel_delta_median']:.4g}, "
                f"p90 {reference['rel_delta_p90']:.4g}, max {reference['rel_delta_max']:.4g})"
            )
        else:
            print(f"  {method}: none of {args.steps} steps reaches it")


if __name__ == "__main__":
    main()
