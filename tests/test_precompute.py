import copy

import h5py
import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients

from conftest import MEAN, STD  # the normalisation trained_teacher was trained with
from igkd.attribution import completeness
from igkd.attribution.precompute import FORMAT_VERSION, AttributionJob, Records, load_precomputed, precompute
from igkd.io import InputError
from igkd.models import build_teacher
from igkd.runtime import Runtime
from igkd.training.augment import InputNorm, normalize
from igkd.training.teacher import TrainedTeacher

SETTINGS = {"steps": 8, "method": "gausslegendre", "internal_batch_size": 64}


@pytest.fixture
def teacher():
    torch.manual_seed(0)
    return build_teacher(width=0.25).eval()


def run(teacher, splits, path, n=200, log=lambda m: None, **job):
    """The precompute of the first n training images (AttributionJob fields as keywords)."""
    job = AttributionJob(**{"attribution": "ig", "settings": SETTINGS, "chunk": 64, "batch": 16, **job})
    records = Records({"data_checksum": "d" * 64, "teacher_checksum": "t" * 64})
    trained = TrainedTeacher(teacher, InputNorm(tuple(MEAN), tuple(STD)), "t" * 64, 0)
    return precompute(trained, splits.train_images[:n], splits.train_labels[:n], path, job, Runtime(log=log), records)


def captum_row(model, splits, i):
    """(logits, map, delta) of training image i (target: its label), by captum alone."""
    x = normalize(torch.from_numpy(splits.train_images[i]).permute(2, 0, 1)[None].float() / 255, MEAN, STD)
    attr, d = IntegratedGradients(model).attribute(
        x,
        baselines=x * 0,
        target=int(splits.train_labels[i]),
        n_steps=8,
        method="gausslegendre",
        return_convergence_delta=True,
    )
    return model(x)[0].detach().numpy(), attr.abs().sum(1)[0].detach().numpy(), d.item()


def test_row_i_belongs_to_image_i(tiny_splits, smooth_teacher, tmp_path):
    """Recompute random rows alone, with captum directly, and compare with the stored rows.

    A trained teacher (an untrained one gives logits and maps of ~1e-8 for every image,
    which any tolerance with an absolute term accepts for any row), smooth (conftest:
    the stage folds BatchNorm and batches images, captum does neither)."""
    model = smooth_teacher
    path = tmp_path / "ig.h5"
    run(model, tiny_splits, path)
    with h5py.File(path) as h5:
        logits, maps, delta = h5["logits"][()], h5["maps"][()], h5["delta"][()]
        assert h5.attrs["rows_done"] == 200
    logits_close = dict(rtol=1e-4, atol=1e-6 * np.abs(logits).max())  # absolute terms scaled to the values
    maps_close = dict(rtol=1e-3, atol=1e-6 * np.abs(maps).max())
    rng = np.random.default_rng(0)
    for i in rng.choice(200, size=6, replace=False):
        own_logits, own_map, own_delta = captum_row(model, tiny_splits, i)
        np.testing.assert_allclose(maps[i], own_map, **maps_close)
        np.testing.assert_allclose(logits[i], own_logits, **logits_close)
        np.testing.assert_allclose(delta[i], own_delta, rtol=1e-2, atol=1e-6 * np.abs(delta).max())
        # the tolerances tell images apart: row i does not pass for the next image's row
        other_logits, other_map, _ = captum_row(model, tiny_splits, (i + 1) % 200)
        assert not np.allclose(logits[i], other_logits, **logits_close)
        assert not np.allclose(maps[i], other_map, **maps_close)


def test_resume_from_partial_equals_uninterrupted(tiny_splits, teacher, tmp_path):
    full = tmp_path / "full.h5"
    run(teacher, tiny_splits, full)
    resumed = tmp_path / "resumed.h5"

    def die_after_first_chunk(message):
        if "64/200" in message:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(teacher, tiny_splits, resumed, log=die_after_first_chunk)
    partial = tmp_path / "resumed.h5.partial"
    assert not resumed.exists() and partial.exists()
    with h5py.File(partial) as h5:
        assert h5.attrs["rows_done"] == 64
    messages = []
    run(teacher, tiny_splits, resumed, log=messages.append)
    assert any("resuming" in m and "row 64/200" in m for m in messages)
    with h5py.File(full) as a, h5py.File(resumed) as b:
        for name in ("logits", "maps", "delta"):
            np.testing.assert_array_equal(a[name][()], b[name][()])


def test_load_validates_shape_rows_and_provenance(tiny_splits, teacher, tmp_path):
    path = tmp_path / "ig.h5"
    run(teacher, tiny_splits, path)
    ok = dict(n_rows=200, image_shape=(8, 8), num_classes=10, data_checksum="d" * 64, teacher_checksum="t" * 64)
    pre = load_precomputed(path, **ok)
    assert pre.maps.shape == (200, 8, 8) and pre.logits.shape == (200, 10)
    with pytest.raises(InputError, match="'logits' has shape"):
        load_precomputed(path, **{**ok, "n_rows": 201})
    with pytest.raises(InputError, match="different teacher"):
        load_precomputed(path, **{**ok, "teacher_checksum": "x" * 64})
    with pytest.raises(InputError, match="different data"):
        load_precomputed(path, **{**ok, "data_checksum": "x" * 64})
    with h5py.File(path, "r+") as h5:
        h5.attrs["rows_done"] = 100
    with pytest.raises(InputError, match="only 100 of 200 rows"):
        load_precomputed(path, **ok)
    with pytest.raises(InputError, match="not found"):
        load_precomputed(tmp_path / "none.h5", **ok)


def test_wrong_dtype_rejected(tmp_path):
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as h5:
        h5["logits"] = np.zeros((3, 10), np.float64)
        h5["maps"] = np.zeros((3, 8, 8), np.float32)
        h5.attrs["rows_done"] = 3
    with pytest.raises(InputError, match="'logits' has dtype float64, expected float32"):
        load_precomputed(path, n_rows=3, image_shape=(8, 8), num_classes=10)


def test_inference_copy_folds_batchnorm_and_leaves_the_model_alone(trained_teacher):
    from igkd.attribution.maps import inference_copy

    model = copy.deepcopy(trained_teacher).use_channels_last(True)
    folded = inference_copy(model)
    x = torch.randn(6, 3, 8, 8)
    torch.testing.assert_close(folded(x), model(x), rtol=1e-4, atol=1e-5)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert not any(p.requires_grad for p in folded.parameters()) and folded.channels_last
    # the caller's model keeps its BatchNorms and trainable weights
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == 52
    assert all(p.requires_grad for p in model.parameters())


def test_ig_delta_from_given_logits_equals_captums(trained_teacher, tiny_splits):
    from igkd.attribution.maps import integrated_gradients

    model = trained_teacher
    x = normalize(torch.from_numpy(tiny_splits.train_images[:5]).permute(0, 3, 1, 2).float() / 255, MEAN, STD)
    target = torch.tensor([0, 3, 5, 7, 9])
    settings = {"steps": 8, "method": "riemann_trapezoid", "internal_batch_size": 16}
    attr, delta = integrated_gradients(model, x, target, settings)
    with torch.no_grad():
        gain = model(x).gather(1, target[:, None])[:, 0] - model(torch.zeros(1, 3, 8, 8))[0, target]
    attr2, delta2 = integrated_gradients(model, x, target, {**settings, "endpoint_gain": gain})
    torch.testing.assert_close(attr2, attr)
    torch.testing.assert_close(delta2, delta, rtol=1e-3, atol=1e-6)
    # a real, non-zero completeness error was compared: captum's riemann_trapezoid weights sum
    # to 7/8 at 8 steps, so delta is about -gain/8 on any CPU, far above this bound
    assert (delta.abs() / gain.abs()).max() > 1e-3


def test_precompute_of_folded_teacher_matches_the_plain_teacher(smooth_teacher, tiny_splits, tmp_path):
    """Folding BatchNorm is an implementation detail: the stored rows match captum run on
    the unfolded model (first 40 rows), every row to rounding.

    The teacher is smooth (conftest.smooth_copy): folding changes float rounding, and
    where an interpolation point sits on a ReLU6 kink that flips one gradient and moves
    one image's map by percent (seen: image 14, 20 %, on one CPU and not another), so
    with ReLU6 no tolerance holds on every CPU. Folding does not depend on the activation."""
    model = smooth_teacher
    path = tmp_path / "ig.h5"
    run(model, tiny_splits, path)
    with h5py.File(path) as h5:
        logits, maps, delta = h5["logits"][:40], h5["maps"][:40], h5["delta"][:40]
    x = normalize(torch.from_numpy(tiny_splits.train_images[:40]).permute(0, 3, 1, 2).float() / 255, MEAN, STD)
    target = torch.as_tensor(tiny_splits.train_labels[:40])
    attr, d = IntegratedGradients(model).attribute(
        x, baselines=x * 0, target=target, n_steps=8, method="gausslegendre", return_convergence_delta=True
    )
    reference_logits = model(x).detach().numpy()
    np.testing.assert_allclose(logits, reference_logits, rtol=1e-4, atol=1e-6 * np.abs(reference_logits).max())
    reference = attr.abs().sum(1).detach().numpy()
    np.testing.assert_allclose(maps, reference, rtol=1e-3, atol=1e-6 * np.abs(reference).max())
    np.testing.assert_allclose(delta, d.detach().numpy(), rtol=1e-2, atol=1e-4 * np.abs(d.numpy()).max())


def test_precompute_stores_gain_abs_and_guarded_rel_delta(trained_teacher, tiny_splits, tmp_path):
    """gain, abs_delta and rel_delta agree with a recomputation from the stored logits and
    delta, rel_delta is guarded by the configured floor (the old |delta| / |gain| is not),
    and the attrs hold the distribution of exactly these rows."""
    model, n, tolerance = trained_teacher, 64, 0.1
    x = normalize(torch.from_numpy(tiny_splits.train_images[:n]).permute(0, 3, 1, 2).float() / 255, MEAN, STD)
    labels = tiny_splits.train_labels[:n]
    with torch.no_grad():
        measured = (model(x)[np.arange(n), labels] - model(torch.zeros(1, 3, 8, 8))[0, labels]).abs().numpy()
    low, high = np.sort(measured)[[n // 2 - 1, n // 2]]
    floor = float(np.sqrt(low * high))  # between the middle gains, from the gains measured: both regimes on any CPU
    path = tmp_path / "ig.h5"
    settings = {**SETTINGS, "rel_floor": floor, "report_tolerance": tolerance}
    summary = run(model, tiny_splits, path, n=n, chunk=32, settings=settings)
    with h5py.File(path) as h5:
        logits, gain, delta = h5["logits"][()], h5["gain"][()], h5["delta"][()]
        absolute, relative = h5["abs_delta"][()], h5["rel_delta"][()]
        attrs = dict(h5.attrs)
    with torch.no_grad():
        zero = model(torch.zeros(1, 3, 8, 8))[0].numpy()
    expected_gain = logits[np.arange(n), labels] - zero[labels]
    np.testing.assert_allclose(gain, expected_gain, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(absolute, np.abs(delta))
    np.testing.assert_allclose(relative, np.abs(delta) / np.maximum(np.abs(expected_gain), floor), rtol=1e-4)
    below = np.abs(gain) < floor
    assert below.any() and (~below).any()  # both regimes occur in these rows
    assert not np.allclose(relative[below], (np.abs(delta) / np.abs(gain))[below])  # not the unguarded ratio
    assert attrs["format_version"] == FORMAT_VERSION == 3
    assert attrs["rel_delta_floor"] == floor and attrs["rel_delta_tolerance"] == tolerance
    assert "setting_rel_floor" not in attrs and attrs["setting_steps"] == SETTINGS["steps"]  # not an IG setting
    assert attrs["completeness_definition"] == completeness.DEFINITION
    recomputed = completeness.summarize(delta, gain, floor=floor, tolerance=tolerance)
    for key, value in recomputed.items():
        if isinstance(value, str):
            assert attrs[key] == summary[key] == value
        else:
            assert attrs[key] == pytest.approx(value) and summary[key] == pytest.approx(value), key
    assert attrs["rel_delta_n"] == n
    assert attrs["rel_delta_median"] == pytest.approx(np.median(relative), rel=1e-5)
    assert attrs["rel_delta_within"] == pytest.approx(np.mean(relative <= tolerance))
    assert attrs["rel_delta_floored"] == pytest.approx(below.mean())


def test_attribution_without_completeness_reports_none(tiny_splits, teacher, tmp_path):
    path = tmp_path / "saliency.h5"
    summary = run(teacher, tiny_splits, path, n=32, attribution="saliency", settings={})
    with h5py.File(path) as h5:
        assert np.isnan(h5["delta"][()]).all() and np.isnan(h5["rel_delta"][()]).all()
        assert np.isfinite(h5["gain"][()]).all()
        assert h5.attrs["rel_delta_n"] == 0 and np.isnan(h5.attrs["rel_delta_median"])
    assert "none" in completeness.format_summary(summary)


def test_partial_file_with_another_floor_starts_over(tiny_splits, teacher, tmp_path):
    path = tmp_path / "ig.h5"

    def die_after_first_chunk(message):
        if "32/64" in message:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(teacher, tiny_splits, path, n=64, chunk=32, log=die_after_first_chunk)
    messages = []
    run(teacher, tiny_splits, path, n=64, chunk=32, settings={**SETTINGS, "rel_floor": 0.5}, log=messages.append)
    assert any("made with other settings; starting over" in m for m in messages)
    with h5py.File(path) as h5:
        assert h5.attrs["rel_delta_floor"] == 0.5


def test_load_accepts_format_1_and_rejects_newer(tiny_splits, teacher, tmp_path):
    path = tmp_path / "ig.h5"
    run(teacher, tiny_splits, path, n=32)
    ok = dict(n_rows=32, image_shape=(8, 8), num_classes=10)
    with h5py.File(path, "r+") as h5:
        h5.attrs["format_version"] = 1  # older files: same logits and maps
    assert load_precomputed(path, **ok).maps.shape == (32, 8, 8)
    with h5py.File(path, "r+") as h5:
        h5.attrs["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(InputError, match=rf"format_version {FORMAT_VERSION + 1}, expected at most {FORMAT_VERSION}"):
        load_precomputed(path, **ok)


@pytest.mark.parametrize(
    "attribution, settings",
    [("random", {}), ("smoothgrad", {"samples": 2, "noise_sd": 0.1, "internal_batch_size": 8})],
)
def test_noise_based_maps_repeat_and_do_not_depend_on_the_chunk(tiny_splits, teacher, tmp_path, attribution, settings):
    """Draws are seeded per batch (the random maps' generator and torch's global one, which
    captum's noise tunnel uses), so the file repeats whatever state the process was in and
    the chunk, a flush size, changes nothing; precompute.seed does."""
    maps = {}
    for name, chunk, seed in (("a", 64, 0), ("again", 64, 0), ("other_chunk", 20, 0), ("other_seed", 64, 1)):
        torch.manual_seed(len(name))  # the global generator left in another state each time
        path = tmp_path / f"{attribution}_{name}.h5"
        run(teacher, tiny_splits, path, n=48, attribution=attribution, settings=settings, chunk=chunk, seed=seed)
        with h5py.File(path) as h5:
            maps[name] = h5["maps"][()]
    assert maps["a"].tobytes() == maps["again"].tobytes() == maps["other_chunk"].tobytes()
    assert not np.array_equal(maps["a"], maps["other_seed"])
