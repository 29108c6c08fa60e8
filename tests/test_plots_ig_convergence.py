"""fig_ig_convergence: the refined IG file reader, its refusal of fixed-steps files, the
per-point-count image counts and the written PDF + PNG."""

import h5py
import numpy as np
import pytest

from igkd.io import InputError
from igkd.plots.ig_convergence import ZERO_BELOW, fig_ig_convergence, read_convergence, step_counts, within, zero_floor

TOLERANCE, START, MAX = 0.05, 17, 129  # grid 17, 33, 65, 129
STEPS = np.array([17, 17, 17, 33, 33, 65, 129, 129, 17, 33], dtype=np.int32)
INITIAL = np.array([0.01, 0.0, 0.04, 0.2, 0.3, 0.5, 0.9, 0.8, 0.02, 0.1], dtype=np.float32)
FINAL = np.array([0.01, 0.0, 0.04, 0.03, 0.02, 0.04, 0.06, 0.07, 0.02, 0.01], dtype=np.float32)
ABOVE = (FINAL > TOLERANCE).astype(np.uint8)  # the two that ended on 129


def write_ig(path, *, refined=True, steps=STEPS, tolerance=TOLERANCE):
    """A precompute-shaped ig.h5; refined=False: the fixed-steps layout (no per-image steps, NaN tolerance)."""
    with h5py.File(path, "w") as h5:
        h5.create_dataset("rel_delta", data=FINAL)
        h5.create_dataset("gain", data=np.ones(len(FINAL), dtype=np.float32))
        if refined:
            h5.create_dataset("steps", data=steps)
            h5.create_dataset("initial_rel_delta", data=INITIAL)
            h5.create_dataset("above_tolerance", data=ABOVE)
        h5.attrs.update(
            rows_done=len(FINAL),
            ig_start_steps=START,
            ig_max_steps=MAX,
            ig_tolerance=tolerance if refined else float("nan"),
        )
    return path


def test_reader_returns_the_rows_and_settings(tmp_path):
    conv = read_convergence(write_ig(tmp_path / "ig.h5"))
    np.testing.assert_allclose(conv.rel_delta, FINAL)
    np.testing.assert_allclose(conv.initial_rel_delta, INITIAL)
    np.testing.assert_array_equal(conv.steps, STEPS)
    np.testing.assert_array_equal(conv.above_tolerance, ABOVE.astype(bool))
    assert (conv.tolerance, conv.start_steps, conv.max_steps) == (TOLERANCE, START, MAX)
    assert conv.grid() == [17, 33, 65, 129]
    assert within(conv.initial_rel_delta, TOLERANCE) == pytest.approx(0.4)
    assert within(conv.rel_delta, TOLERANCE) == pytest.approx(0.8)


def test_zero_errors_sit_below_the_smallest_positive_one():
    assert zero_floor(INITIAL, FINAL, tolerance=TOLERANCE) == pytest.approx(0.01 / ZERO_BELOW)
    assert zero_floor(np.zeros(3), tolerance=TOLERANCE) == pytest.approx(TOLERANCE / ZERO_BELOW)


def test_bar_counts_are_the_images_per_point_count(tmp_path):
    conv = read_convergence(write_ig(tmp_path / "ig.h5"))
    points, images = step_counts(conv)
    used, counts = np.unique(STEPS, return_counts=True)
    np.testing.assert_array_equal(points, [17, 33, 65, 129])
    np.testing.assert_array_equal(points[images > 0], used)
    np.testing.assert_array_equal(images[images > 0], counts)
    assert images.tolist() == [4, 3, 1, 2]


def test_unused_grid_points_get_empty_bars(tmp_path):
    steps = np.array([17] * 8 + [129] * 2, dtype=np.int32)
    conv = read_convergence(write_ig(tmp_path / "ig.h5", steps=steps))
    assert step_counts(conv)[1].tolist() == [8, 0, 0, 2]


def test_figure_writes_pdf_and_png(tmp_path):
    conv = read_convergence(write_ig(tmp_path / "ig.h5"))
    pdf, png = tmp_path / "c.pdf", tmp_path / "c.png"
    fig_ig_convergence(conv, str(pdf), str(png))
    assert pdf.stat().st_size > 1000 and png.stat().st_size > 1000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fixed_steps_file_is_refused_naming_it(tmp_path):
    path = write_ig(tmp_path / "fixed_ig.h5", refined=False)
    with pytest.raises(InputError, match=r"fixed_ig\.h5 has no per-image steps.*precompute\.ig\.tolerance"):
        read_convergence(path)


def test_nan_tolerance_with_steps_is_refused(tmp_path):
    path = write_ig(tmp_path / "ig.h5", tolerance=float("nan"))
    with pytest.raises(InputError, match="has no per-image steps"):
        read_convergence(path)


def test_malformed_refined_files_are_refused(tmp_path):
    with pytest.raises(InputError, match=r"'steps' holds \[20\], not on the grid"):
        read_convergence(write_ig(tmp_path / "a.h5", steps=np.array([20] + [17] * 9, dtype=np.int32)))
    with pytest.raises(InputError, match="equal length"):
        read_convergence(write_ig(tmp_path / "b.h5", steps=STEPS[:5]))
    with h5py.File(write_ig(tmp_path / "d.h5"), "a") as h5:
        h5.attrs["ig_start_steps"] = 1
    with pytest.raises(InputError, match="expected 2 <= ig_start_steps"):
        read_convergence(tmp_path / "d.h5")
    (tmp_path / "c.h5").write_text("not hdf5")
    with pytest.raises(InputError, match=r"c\.h5: not a readable HDF5 file"):
        read_convergence(tmp_path / "c.h5")
    with pytest.raises(InputError, match="not found"):
        read_convergence(tmp_path / "missing.h5")
