"""Integrated gradients refined per image until completeness holds to a tolerance.

Every image starts on the trapezoid rule with `steps` equally spaced points of the path
from the zero baseline; an image whose guarded relative completeness error
(igkd.attribution.completeness) is above `tolerance` gets the midpoints of its current
intervals added (points 2(n-1)+1: the previous points are all reused, so one refinement
costs as many gradients as the intervals it halves), and so on until it is within the
tolerance or the next grid would exceed `max_steps`. Only those images are recomputed.

Why not captum's `riemann_trapezoid`: its weights are 1/n with halved ends, which sum to
(n-1)/n, so every map is scaled by (n-1)/n and completeness is off by |gain|/n however
smooth the path; and its public `attribute` cannot be given the midpoints alone. The
gradients here are the same as captum's (target logit, autograd w.r.t. the scaled input,
times input - baseline); a map refined to n points equals captum's trapezoid map at n
steps times n/(n-1) (tests/test_converged_ig.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from igkd.attribution import completeness
from igkd.io import InputError

QUADRATURE = "trapezoid"  # the config's precompute.ig.method for this path
DESCRIPTION = "trapezoid rule on nested equispaced grids, weights 1/(n-1) (ends halved)"


@dataclass(frozen=True)
class Refinement:
    """How far to refine (precompute.ig: steps, tolerance, max_steps, rel_floor)."""

    steps: int  # points every image starts with
    tolerance: float | None  # None: no refinement (the trapezoid at `steps` for every image)
    max_steps: int  # no image gets more points than this
    floor: float = completeness.DEFAULT_REL_FLOOR

    def __post_init__(self) -> None:
        if self.steps < 2:
            raise InputError(f"precompute.ig.steps: the trapezoid rule needs at least 2 points, got {self.steps}")
        if self.tolerance is not None and not self.tolerance > 0:
            raise InputError(f"precompute.ig.tolerance: expected a number > 0 or null, got {self.tolerance}")
        if self.max_steps < self.steps:
            raise InputError(
                f"precompute.ig.max_steps: expected at least precompute.ig.steps ({self.steps}), got {self.max_steps}"
            )
        completeness.check_floor(self.floor)

    @classmethod
    def from_settings(cls, settings: dict, floor: float) -> Refinement:
        steps, tolerance = int(settings.get("steps", 50)), settings.get("tolerance")
        max_steps = settings.get("max_steps")
        if tolerance is None or max_steps is None:
            max_steps = steps  # nothing to refine
        return cls(steps, tolerance, int(max_steps), floor)

    def above(self, relative: np.ndarray) -> np.ndarray:
        """uint8 flags of the images whose relative error is above the tolerance (none without one)."""
        if self.tolerance is None:
            return np.zeros(len(relative), dtype=np.uint8)
        return (np.asarray(relative) > self.tolerance).astype(np.uint8)

    def grids(self) -> list[int]:
        """Point counts an image can end on: steps, 2(steps-1)+1, ... up to max_steps."""
        counts = [self.steps]
        while self.tolerance is not None and 2 * (counts[-1] - 1) + 1 <= self.max_steps:
            counts.append(2 * (counts[-1] - 1) + 1)
        return counts


@dataclass
class RefinedIG:
    """One batch's result. `delta` = sum(attr) - gain; `initial_delta` the same at `steps`."""

    attr: torch.Tensor  # (B,C,H,W)
    delta: torch.Tensor  # (B,)
    initial_delta: torch.Tensor  # (B,)
    steps: torch.Tensor  # (B,) int32: points each image ended on
    points: int  # gradient evaluations spent on the batch


def trapezoid(points: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights (sum 1) and alphas of the trapezoid rule on `points` equispaced points of [0, 1]."""
    alphas = torch.linspace(0, 1, points, dtype=torch.float64)
    weights = torch.full((points,), 1.0 / (points - 1), dtype=torch.float64)
    weights[0] = weights[-1] = 0.5 / (points - 1)
    return weights, alphas


def midpoints(intervals: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights and alphas of the points that halve `intervals` equal intervals of [0, 1]:
    T_2m = T_m / 2 + (1 / 2m) * sum of f at the new midpoints."""
    alphas = (2 * torch.arange(intervals, dtype=torch.float64) + 1) / (2 * intervals)
    return torch.full((intervals,), 1.0 / (2 * intervals), dtype=torch.float64), alphas


def path_gradients(model, x, target, weights, alphas, internal_batch: int | None) -> torch.Tensor:
    """sum_i weights[i] * d f_target / d input at alphas[i] * x, (B,C,H,W), with at most
    `internal_batch` points per forward/backward pass (None: all at once)."""
    n = len(x)
    limit = internal_batch or n * len(alphas)
    total = torch.zeros_like(x)
    for lo in range(0, n, limit):  # more images than one pass holds: a few at a time
        xs, ts = x[lo : lo + limit], target[lo : lo + limit]
        per_pass = max(1, limit // len(xs))
        for a_lo in range(0, len(alphas), per_pass):
            a = alphas[a_lo : a_lo + per_pass].to(x.device, x.dtype)
            w = weights[a_lo : a_lo + per_pass].to(x.device, x.dtype)
            with torch.enable_grad():
                scaled = (a.view(-1, 1, 1, 1, 1) * xs.unsqueeze(0)).flatten(0, 1).requires_grad_()
                out = model(scaled).gather(1, ts.repeat(len(a))[:, None]).sum()
                (grads,) = torch.autograd.grad(out, scaled)
            total[lo : lo + len(xs)] += (w.view(-1, 1, 1, 1, 1) * grads.view(len(a), *xs.shape)).sum(0)
    return total


def refined_ig(model, x, target, gain, refinement: Refinement, internal_batch: int | None) -> RefinedIG:
    """IG of `x` (normalised, zero baseline) for `target`, refined per image as the module says.

    `gain` = f_target(x) - f_target(0) per image (the caller has the logits)."""
    weights, alphas = trapezoid(refinement.steps)
    integral = path_gradients(model, x, target, weights, alphas, internal_batch)
    delta = (x * integral).flatten(1).sum(1) - gain
    initial_delta = delta.clone()
    steps = torch.full((len(x),), refinement.steps, dtype=torch.int32, device=x.device)
    points = len(x) * refinement.steps
    for previous, count in zip(refinement.grids(), refinement.grids()[1:]):
        _, relative = completeness.errors(delta.cpu().numpy(), gain.cpu().numpy(), refinement.floor)
        active = torch.as_tensor(np.flatnonzero(refinement.above(relative)), device=x.device)
        if len(active) == 0:
            break
        new_weights, new_alphas = midpoints(previous - 1)
        added = path_gradients(model, x[active], target[active], new_weights, new_alphas, internal_batch)
        integral[active] = 0.5 * integral[active] + added
        delta[active] = (x[active] * integral[active]).flatten(1).sum(1) - gain[active]
        steps[active] = count
        points += len(active) * len(new_alphas)
    return RefinedIG(x * integral, delta, initial_delta, steps, points)


def summarize_steps(steps, above, refinement: Refinement) -> dict:
    """File attrs: the refinement's settings and the distribution of the points used."""
    steps = np.asarray(steps, dtype=np.float64)
    p50, p90, p99 = np.percentile(steps, [50, 90, 99])
    return {
        "quadrature": DESCRIPTION,
        "ig_tolerance": float("nan") if refinement.tolerance is None else refinement.tolerance,
        "ig_start_steps": refinement.steps,
        "ig_max_steps": refinement.max_steps,
        "steps_median": float(p50),
        "steps_p90": float(p90),
        "steps_p99": float(p99),
        "steps_max": float(steps.max()),
        "steps_mean": float(steps.mean()),
        "within_tolerance": float(1 - np.mean(above)) if refinement.tolerance is not None else float("nan"),
        "above_tolerance_count": int(np.sum(above)),
    }


def format_steps(summary: dict) -> str:
    """One log line for the `summarize_steps` part of a summary."""
    if np.isnan(summary["ig_tolerance"]):
        return f"trapezoid at {summary['ig_start_steps']} points for every image (precompute.ig.tolerance: null)"
    return (
        f"refined to tolerance {summary['ig_tolerance']:g} from {summary['ig_start_steps']} points "
        f"(max {summary['ig_max_steps']}): {summary['within_tolerance']:.1%} of images within, "
        f"{summary['above_tolerance_count']} still above at max_steps; points per image: median "
        f"{summary['steps_median']:g}, p90 {summary['steps_p90']:g}, p99 {summary['steps_p99']:g}, "
        f"max {summary['steps_max']:g}, mean {summary['steps_mean']:.1f}"
    )
