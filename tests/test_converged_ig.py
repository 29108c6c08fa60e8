"""Converged IG (igkd.attribution.converged_ig): the quadrature, agreement with captum,
refinement of only the images above tolerance, the precompute file and the config."""

import copy

import h5py
import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients

from conftest import MEAN, STD
from igkd.attribution import completeness
from igkd.attribution.converged_ig import Refinement, midpoints, path_gradients, refined_ig, trapezoid
from igkd.attribution.maps import inference_copy
from igkd.attribution.precompute import REFINED_ROWS, AttributionJob, load_precomputed, precompute
from igkd.config import load_config, validate_config
from igkd.io import InputError
from igkd.runtime import Runtime
from igkd.training.augment import InputNorm, normalize
from igkd.training.teacher import TrainedTeacher

N = 96  # images of the 8x8 digits the tests attribute


@pytest.fixture(scope="module")
def batch(smooth_teacher):
    """(folded teacher, normalised x, targets, gains) for the first N training images.

    The teacher is smooth (conftest.smooth_copy): these tests compare igkd's gradients with
    captum's, computed in other batches, so a ReLU6 kink could flip one on some CPU."""
    from igkd.data.digits import load_digits_splits

    splits = load_digits_splits(8, 0.2, 0)
    x = normalize(torch.from_numpy(splits.train_images[:N]).permute(0, 3, 1, 2).float() / 255, MEAN, STD)
    y = torch.as_tensor(splits.train_labels[:N])
    model = inference_copy(smooth_teacher)
    with torch.no_grad():
        gain = model(x).gather(1, y[:, None])[:, 0] - model(torch.zeros_like(x[:1]))[0][y]
    return model, x, y, gain


def grid_errors(model, x, y, gain, grids) -> np.ndarray:
    """Relative completeness error of the fixed trapezoid rule (rows: grids, columns: images)."""
    deltas = [refined_ig(model, x, y, gain, Refinement(g, None, g), internal_batch=64).delta for g in grids]
    return np.stack([completeness.errors(d.numpy(), gain.numpy())[1] for d in deltas])


def tolerance_from(errors: np.ndarray) -> float:
    """A tolerance taken from the errors the test measured, never a fixed number.

    The fixture teacher's 40 SGD steps amplify floating-point rounding: with other kernels
    (AVX-512, AVX2, SSE4.1) its completeness errors move by factors, so a constant such as
    0.05 left all 96 images above it on one CPU. `errors` holds one row per grid (coarse
    first): an image stops on the first grid where its error is <= the tolerance, or is
    flagged on the last. The tolerance chosen has images "within on the first grid" and
    "flagged on the last" where the errors allow both, images ending on at least three
    grids, the rarest outcome as common as it can be, and every error at least 1 % away
    from it, so rounding between two computations of one error cannot move an image
    across it."""
    errors = np.maximum(errors, 1e-30)
    values = np.unique(errors)
    best = (None, (False, 0, 0))
    for tolerance in np.sqrt(values[:-1] * values[1:]):  # geometric midpoints of neighbours
        if np.abs(np.log(errors / tolerance)).min() < 0.01:
            continue
        within = errors <= tolerance
        stop = np.where(within.any(0), within.argmax(0), len(errors))  # len(errors): flagged
        counts = np.bincount(stop, minlength=len(errors) + 1)
        present = counts > 0
        grids = int(present[:-2].sum()) + bool(present[-2:].any())  # flagged images end on the last grid too
        score = (bool(present[0] and present[-1]), min(grids, 3), int(counts[present].min()))
        if score > best[1]:
            best = (float(tolerance), score)
    assert best[0] is not None, "no tolerance separates these errors"
    return best[0]


def rounding_of_sums(attr: torch.Tensor, gain: torch.Tensor) -> np.ndarray:
    """Tolerance for two computations of delta = sum(attr) - gain: float32 rounding of a sum
    grows with the size of its terms (the smooth teacher's logits reach ~100, where a fixed
    1e-4 failed with SSE4.1 kernels: 1.1e-4 apart, 7e-6 relative)."""
    return 1e-5 * (attr.abs().flatten(1).sum(1) + gain.abs()).numpy()


def assert_within(actual: np.ndarray, desired: np.ndarray, tolerance: np.ndarray) -> None:
    """|actual - desired| <= tolerance, element by element (one tolerance per image)."""
    off = np.abs(actual - desired)
    assert np.all(off <= tolerance), f"apart by {off[off > tolerance]} where allowed {tolerance[off > tolerance]}"


def test_trapezoid_weights_sum_to_one_and_midpoints_nest():
    weights, alphas = trapezoid(5)
    assert float(weights.sum()) == pytest.approx(1.0)
    np.testing.assert_allclose(alphas.numpy(), [0, 0.25, 0.5, 0.75, 1])
    # T_8 from T_4 and the 4 midpoints equals the trapezoid rule on 9 points, for any integrand
    f = torch.cos(3 * torch.linspace(0, 1, 9, dtype=torch.float64)) + torch.linspace(0, 1, 9, dtype=torch.float64) ** 2
    coarse = (weights * f[::2]).sum()
    mid_w, mid_a = midpoints(4)
    np.testing.assert_allclose(mid_a.numpy(), [0.125, 0.375, 0.625, 0.875])
    nine_w, _ = trapezoid(9)
    assert float(0.5 * coarse + (mid_w * f[1::2]).sum()) == pytest.approx(float((nine_w * f).sum()), rel=1e-12)


def test_fixed_trapezoid_equals_captum_up_to_its_weight_sum(batch):
    """captum's riemann_trapezoid weights sum to (n-1)/n; otherwise the same gradients."""
    model, x, y, _ = batch
    for points in (5, 17):
        weights, alphas = trapezoid(points)
        ours = x * path_gradients(model, x, y, weights, alphas, internal_batch=64)
        captum = IntegratedGradients(model).attribute(
            x, baselines=torch.zeros_like(x), target=y, n_steps=points, method="riemann_trapezoid"
        )
        np.testing.assert_allclose(ours.numpy(), captum.numpy() * points / (points - 1), rtol=1e-4, atol=1e-6)


def test_a_refined_map_equals_captum_at_its_final_steps(batch):
    model, x, y, gain = batch
    tolerance = tolerance_from(grid_errors(model, x, y, gain, Refinement(5, 1.0, 129).grids()))
    result = refined_ig(model, x, y, gain, Refinement(5, tolerance, 129), internal_batch=100)
    refined = torch.nonzero(result.steps > 5)[:, 0]
    assert len(refined) >= 3 and len(set(result.steps.tolist())) >= 3  # several images, several grids
    # one image of each final grid first, then others: every nesting depth is compared
    firsts = [int(refined[result.steps[refined] == g][0]) for g in sorted(set(result.steps[refined].tolist()))]
    for i in (firsts + [i for i in refined.tolist() if i not in firsts])[:6]:
        points = int(result.steps[i])
        captum = IntegratedGradients(model).attribute(
            x[i : i + 1],
            baselines=torch.zeros_like(x[i : i + 1]),
            target=int(y[i]),
            n_steps=points,
            method="riemann_trapezoid",
        )
        np.testing.assert_allclose(
            result.attr[i].numpy(), captum[0].numpy() * points / (points - 1), rtol=1e-3, atol=1e-6
        )
    # the stored error is the error of the stored map
    stored = result.attr.flatten(1).sum(1).numpy() - gain.numpy()
    assert_within(result.delta.numpy(), stored, rounding_of_sums(result.attr, gain))


def test_refinement_touches_only_images_above_tolerance(batch):
    model, x, y, gain = batch
    start = Refinement(5, None, 5)
    fixed = refined_ig(model, x, y, gain, start, internal_batch=64)
    _, initial = completeness.errors(fixed.delta.numpy(), gain.numpy())
    tolerance = float(np.median(initial))  # from the errors measured here: half above it on any CPU
    refined = refined_ig(model, x, y, gain, Refinement(5, tolerance, 257), internal_batch=64)
    above = initial > tolerance
    assert 0 < above.sum() < N  # the test means something: some images need refinement, some not
    np.testing.assert_array_equal(refined.steps.numpy() > 5, above)
    kept = ~above
    assert torch.equal(refined.attr[kept], fixed.attr[kept])  # untouched rows: bit for bit
    np.testing.assert_array_equal(refined.initial_delta.numpy(), fixed.delta.numpy())
    # each refinement adds only the midpoints: points = N*5 + sum over refined images of (final - 5)
    assert refined.points == N * 5 + int((refined.steps - 5).sum())
    _, final = completeness.errors(refined.delta.numpy(), gain.numpy())
    at_max = refined.steps.numpy() == 257
    assert np.all((final <= tolerance) | at_max)
    assert np.median(final[above]) < np.median(initial[above])


def test_grids_stop_at_max_steps():
    assert Refinement(17, 0.05, 1025).grids() == [17, 33, 65, 129, 257, 513, 1025]
    assert Refinement(17, 0.05, 100).grids() == [17, 33, 65]
    assert Refinement(17, None, 1025).grids() == [17]


def run_precompute(model, splits, path, settings, n=N):
    job = AttributionJob("ig", {"internal_batch_size": 64, **settings}, chunk=40, batch=16)
    teacher = TrainedTeacher(copy.deepcopy(model), InputNorm(tuple(MEAN), tuple(STD)), "t" * 64, 0)
    messages = []
    summary = precompute(
        teacher, splits.train_images[:n], splits.train_labels[:n], path, job, Runtime(log=messages.append)
    )
    return summary, messages


def test_precompute_stores_steps_errors_and_flags(batch, smooth_teacher, tiny_splits, tmp_path):
    path = tmp_path / "ig.h5"
    tolerance = tolerance_from(grid_errors(*batch, Refinement(5, 1.0, 17).grids()))  # the same N images
    settings = {"steps": 5, "method": "trapezoid", "tolerance": tolerance, "max_steps": 17}
    summary, messages = run_precompute(smooth_teacher, tiny_splits, path, settings)
    with h5py.File(path) as h5:
        rows = {name: h5[name][()] for name in (*REFINED_ROWS, "rel_delta", "maps")}
        attrs = dict(h5.attrs)
    assert set(np.unique(rows["steps"])) <= {5, 9, 17}
    # every outcome occurs: within at 5 points, refined and within, flagged at max_steps
    assert (rows["steps"] == 5).any() and 0 < rows["above_tolerance"].sum() < N
    assert (rows["above_tolerance"][rows["steps"] > 5] == 0).any()
    np.testing.assert_array_equal(rows["above_tolerance"], rows["rel_delta"] > tolerance)
    assert np.all(rows["steps"][rows["above_tolerance"] == 1] == 17)  # only at max_steps
    np.testing.assert_array_equal(rows["steps"] > 5, rows["initial_rel_delta"] > tolerance)
    assert attrs["ig_tolerance"] == tolerance and attrs["ig_max_steps"] == 17 and "trapezoid" in attrs["quadrature"]
    assert attrs["within_tolerance"] == pytest.approx(1 - rows["above_tolerance"].mean())
    assert attrs["rel_delta_within"] == pytest.approx(attrs["within_tolerance"])  # reported against the tolerance
    assert summary["steps_mean"] == pytest.approx(rows["steps"].mean())
    assert any(f"refined to tolerance {tolerance:g}" in m and "points per image" in m for m in messages)
    # the chunked stage equals refined_ig on each chunk: same maps as one direct call
    loaded = load_precomputed(path, n_rows=N, image_shape=(8, 8), num_classes=10)
    np.testing.assert_array_equal(loaded.above_tolerance, rows["above_tolerance"])


def test_fixed_steps_file_is_unchanged_by_the_new_keys(smooth_teacher, tiny_splits, tmp_path):
    """tolerance: null (with the schema's max_steps) is today's captum path, byte for byte."""
    plain, with_keys = tmp_path / "plain.h5", tmp_path / "keys.h5"
    run_precompute(smooth_teacher, tiny_splits, plain, {"steps": 8, "method": "gausslegendre"})
    run_precompute(
        smooth_teacher,
        tiny_splits,
        with_keys,
        {"steps": 8, "method": "gausslegendre", "tolerance": None, "max_steps": 1025},
    )
    with h5py.File(plain) as a, h5py.File(with_keys) as b:
        assert set(a) == set(b) and not set(REFINED_ROWS) & set(a)
        for name in a:
            assert a[name][()].tobytes() == b[name][()].tobytes(), name
        assert {k: str(v) for k, v in a.attrs.items() if not k.startswith("env")} == {
            k: str(v) for k, v in b.attrs.items() if not k.startswith("env")
        }
    assert load_precomputed(plain, n_rows=N, image_shape=(8, 8), num_classes=10).above_tolerance is None


def test_tolerance_with_a_captum_quadrature_is_refused(smooth_teacher, tiny_splits, tmp_path):
    with pytest.raises(InputError, match="precompute.ig.tolerance: .*method: trapezoid"):
        run_precompute(smooth_teacher, tiny_splits, tmp_path / "x.h5", {"steps": 8, "tolerance": 0.05})


@pytest.mark.parametrize(
    "ig, message",
    [
        ({"tolerance": 0}, r"precompute.ig.tolerance: 0 is less than or equal to the minimum of 0"),
        ({"tolerance": -0.1}, r"precompute.ig.tolerance: -0.1 is less than or equal to the minimum of 0"),
        (
            {"method": "trapezoid", "steps": 17, "tolerance": 0.05, "max_steps": 9},
            r"precompute.ig.max_steps: expected at least precompute.ig.steps \(17\), got 9",
        ),
        ({"method": "gausslegendre", "tolerance": 0.05}, r"precompute.ig.tolerance: refining .* needs"),
        ({"method": "trapezoid", "steps": 1}, r"precompute.ig.steps: the trapezoid rule needs at least 2"),
    ],
)
def test_bad_refinement_settings_name_the_key(repo, ig, message):
    cfg = load_config(repo / "config.yaml")
    cfg["precompute"]["ig"].update(ig)
    with pytest.raises(InputError, match=message):
        validate_config(cfg)


def test_per_image_overlay_p_skips_exactly_the_zero_rows():
    from igkd.training.augment import augment_batch

    images = torch.randint(0, 256, (32, 3, 8, 8), dtype=torch.uint8)
    maps = torch.rand(32, 8, 8)
    kw = dict(padding=2, flip=True, power_range=(1.0, 2.0), blend=0.5)
    p = torch.full((32,), 0.7)
    p[::3] = 0
    scalar = augment_batch(images, maps, overlay_p=0.7, generator=torch.Generator().manual_seed(4), **kw)
    per_row = augment_batch(images, maps, overlay_p=p, generator=torch.Generator().manual_seed(4), **kw)
    plain = augment_batch(images, maps, overlay_p=0.0, generator=torch.Generator().manual_seed(4), **kw)
    skipped = p == 0
    assert torch.equal(per_row[~skipped], scalar[~skipped])  # the same draws for the others
    changed = (scalar != per_row).flatten(1).any(1)
    assert changed.any() and not changed[~skipped].any()  # some skipped rows would have been overlaid
    # a skipped row is its crop and flip alone: whole multiples of 1/255, where a blended map is not
    levels = lambda x: torch.allclose(x * 255, (x * 255).round(), atol=1e-3)  # noqa: E731
    assert levels(per_row[skipped]) and levels(plain)
    assert not levels(per_row[~skipped & changed.logical_not() & (scalar != plain).flatten(1).any(1)])


def test_skip_policy_zeroes_the_overlay_of_flagged_maps(tiny_splits):
    from igkd.models import build_student
    from igkd.training.distiller import Distiller, Overlay, Recipe
    from igkd.training.methods import get_method
    from igkd.training.student import subsample

    n = len(tiny_splits.train_labels)
    rng = np.random.default_rng(0)
    flags = (rng.random(n) < 0.2).astype(np.uint8)
    pre = type(
        "Pre",
        (),
        {
            "logits": rng.normal(size=(n, 10)).astype(np.float32),
            "maps": rng.random((n, 8, 8), dtype=np.float32),
            "above_tolerance": flags,
        },
    )()
    rows = subsample(tiny_splits.train_labels, tiny_splits.train_index, 0.8, 0)
    for policy in ("use", "skip"):
        recipe = Recipe(0.5, 2.0, 0.8, 1, True, Overlay(0.3, 1.0, 2.0, 0.5, policy), InputNorm(), control_seed=3)
        distiller = Distiller(build_student(15), get_method("KD_IG"), recipe, 0)
        data = distiller.training_set(tiny_splits, rows, pre, "cpu")
        record = distiller.rows_record(tiny_splits.train_labels, rows, pre)
        assert record["overlay_above_tolerance"] == policy
        assert record["overlay_maps_above_tolerance"] == int(flags[rows].sum()) > 0
        if policy == "use":
            assert data.overlay_p is None and record["overlay_maps_skipped"] == 0
        else:
            np.testing.assert_array_equal(data.overlay_p.numpy(), np.where(flags[rows] == 1, 0.0, 0.3).astype("f4"))
            assert record["overlay_maps_skipped"] == int(flags[rows].sum())
    # no overlay, no record
    plain = Distiller(build_student(15), get_method("KD"), recipe, 0)
    assert (
        plain.rows_record(tiny_splits.train_labels, rows, pre) == {}
        and plain.training_set(tiny_splits, rows, pre, "cpu").overlay_p is None
    )


def test_the_ig_attributor_refines_with_method_trapezoid(batch):
    """Figures call attributions through the registry (fig_attributions): with the
    precompute's `method: trapezoid` settings they get the refined maps, not a captum error."""
    from igkd.attribution.maps import attributor

    model, x, y, gain = batch
    x, y, gain = x[:8], y[:8], gain[:8]
    tolerance = float(np.median(grid_errors(model, x, y, gain, [5])))  # half of the 8 images refine
    settings = {"steps": 5, "method": "trapezoid", "tolerance": tolerance, "max_steps": 65}
    attr, delta = attributor("ig")(model, x, y, {**settings, "internal_batch_size": "auto"})
    direct = refined_ig(model, x, y, gain, Refinement(5, tolerance, 65), None)
    assert 0 < int((direct.steps > 5).sum()) < 8
    np.testing.assert_allclose(attr.numpy(), direct.attr.numpy(), rtol=1e-4, atol=1e-6)
    assert_within(delta.numpy(), direct.delta.numpy(), rounding_of_sums(direct.attr, gain))
