"""Figures from small synthetic inputs (PDF and PNG written, non-empty), the data they are
drawn from (example rows, attention and attribution maps), and the sweep tables."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import configs
from igkd.analysis import sweeps
from igkd.analysis.sweeps import (
    best_point,
    grid_points,
    lookup_point,
    sweep_summary,
    sweep_table,
)
from igkd.attribution.precompute import Precomputed
from igkd.experiments import KD, StudentRecipe
from igkd.io import InputError
from igkd.models import at_block, build_student, build_teacher
from igkd.plots.attention import attention_maps, fig_attention
from igkd.plots.attributions import attribution_maps, fig_attributions
from igkd.plots.examples import Examples, class_examples
from igkd.plots.ig_overlay import fig_ig_overlay, overlay
from igkd.plots.ig_power import fig_ig_power, powered_maps
from igkd.plots.kd_grid import fig_kd_grid
from igkd.plots.mc_hist import fig_mc_hist, main_student
from igkd.plots.overlay_p import fig_overlay_p
from igkd.training.sweep_points import point_run, point_settings

CLASSES = tuple(str(i) for i in range(10))


def paths(tmp_path, name):
    return str(tmp_path / f"{name}.pdf"), str(tmp_path / f"{name}.png")


def assert_written(pdf, png):
    with open(pdf, "rb") as fh:
        assert fh.read(5) == b"%PDF-"
    with open(png, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    assert Path(pdf).stat().st_size > 1000 and Path(png).stat().st_size > 1000


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8), rng.random((4, 8, 8)).astype(np.float32)


# ---------------------------------------------------------------- examples and IG figures


def test_class_examples_are_the_first_row_of_each_class_in_class_order():
    labels = np.array([3, 1, 3, 0, 1, 2, 0])
    assert class_examples(labels).tolist() == [3, 1, 5, 0]
    assert class_examples(labels, 2).tolist() == [3, 1]


def test_overlay_blends_the_min_max_scaled_map(images):
    imgs, maps = images
    scaled, mixed = overlay(imgs, maps, exponent=2.0, blend=0.5)
    expected = maps**2
    low, high = expected.min(axis=(1, 2), keepdims=True), expected.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(scaled, (expected - low) / (high - low), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mixed, 0.5 * imgs / 255.0 + 0.5 * scaled[..., None], rtol=1e-5, atol=1e-6)


def test_powered_maps_are_min_max_scaled_and_sharpen_with_the_exponent(images):
    _, maps = images
    out = powered_maps(maps[0], [1, 2])
    assert out.shape == (2, 8, 8)
    np.testing.assert_allclose(out.min(axis=(1, 2)), 0, atol=1e-6)
    np.testing.assert_allclose(out.max(axis=(1, 2)), 1, atol=1e-6)
    assert out[1].mean() < out[0].mean()  # a higher power keeps fewer strong pixels


def test_fig_ig_overlay_and_ig_power(tmp_path, images):
    imgs, maps = images
    fig_ig_overlay(imgs, maps, np.arange(4), CLASSES, 1.0, 0.5, *paths(tmp_path, "ig_overlay"))
    assert_written(*paths(tmp_path, "ig_overlay"))
    fig_ig_power(imgs[0], maps[0], [1, 1.25, 1.5, 1.75, 2], "title", *paths(tmp_path, "ig_power"))
    assert_written(*paths(tmp_path, "ig_power"))


# ---------------------------------------------------------------- Monte Carlo histograms


WIDTH_025_TEACHER_PAPER_FACTOR = 8.91  # 2,236,682 / 250,922


def runs_frame():
    rng = np.random.default_rng(1)
    rows = []
    for drop, paper_factor in ((13, 54.59), (3, 2.19), (7, 7.29)):
        for method in ("Student", "KD", "IG"):
            for run in range(6):
                rows.append(
                    {
                        "method": method,
                        "student": f"mobilenetv2-drop{drop}",
                        "factor": paper_factor / WIDTH_025_TEACHER_PAPER_FACTOR,  # vs a width-0.25 teacher
                        "paper_factor": paper_factor,
                        "run": run,
                        "test_acc": 90 + rng.normal() if method != "IG" else 91.0,
                    }
                )
    return pd.DataFrame(rows)


def test_main_student_is_the_paper_factor_closest_to_4_12_on_a_log_scale():
    runs = runs_frame()
    # |ln(7.29/4.12)| = 0.571 < |ln(2.19/4.12)| = 0.632; by `factor` (vs this run's width-0.25
    # teacher: 0.25, 0.82, 6.13) it would be drop 13, so the paper's factor is the one read
    assert main_student(runs) == "mobilenetv2-drop7"
    assert main_student(runs, "mobilenetv2-drop13") == "mobilenetv2-drop13"
    present = r"\['mobilenetv2-drop3', 'mobilenetv2-drop7', 'mobilenetv2-drop13'\]"  # by size, not as text
    with pytest.raises(InputError, match=f"figures.mc_hist.student: mobilenetv2-drop5 is not among .*{present}"):
        main_student(runs, "mobilenetv2-drop5")
    # a tie goes to the first in registry order (the smaller drop), whatever the rows' order
    tie = runs.assign(paper_factor=2.19)
    assert main_student(tie, target=2.19) == "mobilenetv2-drop3"
    assert main_student(tie.iloc[::-1], target=2.19) == "mobilenetv2-drop3"


def test_fig_mc_hist_handles_constant_groups_and_skips_absent_methods(tmp_path):
    runs = runs_frame()  # IG is constant: drawn without a fit
    fig_mc_hist(runs, ["Student", "KD", "IG", "AT"], "mobilenetv2-drop7", 8, *paths(tmp_path, "mc_hist"))
    assert_written(*paths(tmp_path, "mc_hist"))
    with pytest.raises(InputError, match="no runs of the configured methods of student mobilenetv2-drop7"):
        fig_mc_hist(runs, ["AT"], "mobilenetv2-drop7", 8, *paths(tmp_path, "none"))


# ---------------------------------------------------------------- attention and attributions


def test_attention_maps_match_between_teacher_and_student_and_are_unit_norm(tmp_path, images):
    torch.manual_seed(0)
    teacher, student = build_teacher(10, 0.25), build_student(13, 10, 0.25)
    x = torch.rand(4, 3, 8, 8)
    block = at_block(13)
    t_maps, s_maps = attention_maps(teacher, x, block), attention_maps(student, x, block)
    assert t_maps.shape == s_maps.shape == (4, 4, 4)  # block 4 follows the first stride-2 stage
    np.testing.assert_allclose((t_maps**2).sum(axis=(1, 2)), 1, rtol=1e-5)
    assert (t_maps >= 0).all()
    fig_attention(
        Examples(images[0], np.arange(4), CLASSES),
        t_maps,
        {"Student": s_maps, "AT": t_maps},
        block,
        "t",
        *paths(tmp_path, "attention"),
    )
    assert_written(*paths(tmp_path, "attention"))


def test_attribution_maps_for_each_method_are_scaled_to_unit_range(tmp_path, images):
    torch.manual_seed(0)
    teacher = build_teacher(10, 0.25).eval()
    x = torch.randn(2, 3, 8, 8)
    names = ["saliency", "smoothgrad", "ig", "gradientshap"]
    settings = {"ig": {"steps": 4}, "smoothgrad": {"samples": 2}, "gradientshap": {"samples": 2}}
    maps = attribution_maps(teacher, x, torch.tensor([1, 2]), names, settings)
    assert list(maps) == names
    for m in maps.values():
        assert m.shape == (2, 8, 8)
        np.testing.assert_allclose(m.min(axis=(1, 2)), 0, atol=1e-6)
        np.testing.assert_allclose(m.max(axis=(1, 2)), 1, atol=1e-6)
    again = attribution_maps(teacher, x, torch.tensor([1, 2]), ["smoothgrad"], settings)
    np.testing.assert_array_equal(again["smoothgrad"], maps["smoothgrad"])  # seeded noise
    with pytest.raises(InputError, match="unknown \\['occlusion'\\]"):
        attribution_maps(teacher, x, torch.tensor([1, 2]), ["occlusion"], settings)
    fig_attributions(Examples(images[0][:2], np.arange(2), CLASSES), maps, "t", *paths(tmp_path, "attributions"))
    assert_written(*paths(tmp_path, "attributions"))


# ---------------------------------------------------------------- sweeps


SWEEPS = {
    "student": "mobilenetv2-drop5",
    "runs": 2,
    "epochs": 3,
    "fraction": 1.0,
    "grouping": "point",
    "kd": {"method": "KD", "alphas": [0.0005, 0.25], "temperatures": [2, 2.5]},
    "overlay": {"method": "IG", "ps": [0, 0.1]},
}
STUDENTS = StudentRecipe.from_config({**configs.STUDENT, "epochs": 100, "eval_every": 10, "exclude_val": False})


def test_grid_names_lookup_and_point_run():
    points = grid_points(SWEEPS, "kd")
    assert list(points) == ["alpha0.0005_T2", "alpha0.0005_T2.5", "alpha0.25_T2", "alpha0.25_T2.5"]
    assert lookup_point(SWEEPS, "kd", "alpha0.25_T2") == {"alpha": 0.25, "temperature": 2.0}
    assert list(grid_points(SWEEPS, "overlay_p")) == ["p0", "p0.1"]
    with pytest.raises(InputError, match="'alpha0.3_T2' is not in the configured grid"):
        lookup_point(SWEEPS, "kd", "alpha0.3_T2")
    students, _ = point_settings(STUDENTS, SWEEPS, "kd")
    run = point_run(students, SWEEPS, "kd", {"alpha": 0.25, "temperature": 2.0}, 1)
    assert (run.method, run.student, run.fraction, run.run) == ("KD", "mobilenetv2-drop5", 1.0, 1)
    assert run.recipe.kd == KD(0.25, 2.0) and run.recipe.lr == STUDENTS.lr
    assert run.recipe.exclude_val is True and run.recipe.epochs == run.recipe.eval_every == 3
    assert STUDENTS.kd.alpha == 0.01 and STUDENTS.epochs == 100  # the recipe is not modified


def test_point_settings_hold_what_changes_a_point_and_nothing_else():
    students, settings = point_settings(STUDENTS, SWEEPS, "overlay_p")
    assert settings == {"student": "mobilenetv2-drop5", "epochs": 3, "fraction": 1.0, "overlay": {"method": "IG"}}
    assert not {"epochs", "eval_every", "exclude_val", "kd"} & set(students)  # set by the sweep, or not IG's
    assert "p" not in students["ig"] and students["ig"]["blend"] == STUDENTS.ig.blend  # the grid sets p
    # a wider grid, more runs or another KD weight leave every existing point's settings unchanged
    wider = {**SWEEPS, "overlay": {**SWEEPS["overlay"], "ps": [0, 0.1, 0.2]}, "runs": 5}
    other_kd = STUDENTS.replace(kd=KD(0.5, 4.0), epochs=7)
    assert point_settings(other_kd, wider, "overlay_p") == (students, settings)
    assert point_settings(STUDENTS.replace(lr=0.01), SWEEPS, "overlay_p") != (students, settings)


def write_point(tmp_path, sweep, values, run, val_acc, **extra):
    metrics = {
        "sweep": sweep,
        "method": "KD",
        "student": "mobilenetv2-drop5",
        "run": run,
        "seed": run,
        "n_train": 90,
        "n_val": 10,
        "epochs": 3,
        "val_acc": val_acc,
        "environment": {"device": "cpu", "device_type": "cpu", "precision": "fp32", "threads": 1},
        **values,
        **extra,
    }
    path = tmp_path / sweep / f"{sweeps.point_name(sweep, values)}_run{run}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics))
    return str(path)


def kd_table(tmp_path):
    accs = {(0.0005, 2.0): [80, 82], (0.0005, 2.5): [85, 87], (0.25, 2.0): [70, 70], (0.25, 2.5): [86, 90]}
    files = [
        write_point(tmp_path, "kd", {"alpha": a, "temperature": t}, r, acc[r])
        for (a, t), acc in reversed(accs.items())
        for r in range(2)
    ]
    return sweep_table(files)


def test_sweep_table_summary_and_best_point(tmp_path):
    table = kd_table(tmp_path)
    assert list(table.columns[:5]) == ["sweep", "method", "student", "alpha", "temperature"]
    assert table[["alpha", "temperature", "run"]].values.tolist()[:2] == [[0.0005, 2.0, 0], [0.0005, 2.0, 1]]
    assert "test_acc" not in table
    summary = sweep_summary(table)
    row = summary[(summary.alpha == 0.25) & (summary.temperature == 2.5)].iloc[0]
    assert row["mean"] == 88 and row["sd"] == pytest.approx(np.sqrt(8)) and row["n"] == 2
    assert best_point(table) == {"alpha": 0.25, "temperature": 2.5, "val_acc": 88.0, "n": 2}
    fig_kd_grid(table, *paths(tmp_path, "kd_grid"))
    assert_written(*paths(tmp_path, "kd_grid"))


def test_overlay_sweep_figure(tmp_path):
    files = [write_point(tmp_path, "overlay_p", {"p": p}, r, 80 + 10 * p + r) for p in (0, 0.1, 0.5) for r in range(2)]
    table = sweep_table(files)
    assert best_point(table)["p"] == 0.5
    fig_overlay_p(table, *paths(tmp_path, "overlay_p"))
    assert_written(*paths(tmp_path, "overlay_p"))


def test_sweep_table_rejects_bad_metrics(tmp_path):
    good = write_point(tmp_path, "kd", {"alpha": 0.01, "temperature": 2}, 0, 80)
    other = write_point(tmp_path, "overlay_p", {"p": 0.1}, 0, 80)
    with pytest.raises(InputError, match="several sweeps mixed"):
        sweep_table([good, other])
    no_val = write_point(tmp_path, "kd", {"alpha": 0.01, "temperature": 3}, 0, None)
    with pytest.raises(InputError, match="val_acc is null"):
        sweep_table([no_val])
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"sweep": "kd", "alpha": 0.01}))
    with pytest.raises(InputError, match="broken.json: missing keys"):
        sweep_table([str(broken)])
    with pytest.raises(InputError, match="no metrics files"):
        sweep_table([])


def test_train_points_scores_on_validation_and_never_sees_the_test_set(tmp_path, tiny_splits):
    from configs import STUDENT
    from igkd.runtime import Runtime
    from igkd.training.augment import InputNorm
    from igkd.training.sweep import SweepJob, train_points
    from igkd.training.teacher import TrainedTeacher

    cfg, _ = point_settings(StudentRecipe.from_config({**STUDENT, "epochs": 9}), SWEEPS, "overlay_p")
    sweeps_cfg = {**SWEEPS, "student": "mobilenetv2-drop13", "epochs": 1}
    points = [{"p": 0.0, "run": 0}]
    metrics_path, history_path = tmp_path / "p0/run0/metrics.json", tmp_path / "p0/run0/history.csv"
    n_train = len(tiny_splits.train_labels)
    maps = np.random.default_rng(0).random((n_train, 8, 8), dtype=np.float32)

    pre = Precomputed(np.zeros((n_train, 10), np.float32), maps, {})
    job = SweepJob("overlay_p", points, [metrics_path], [history_path])
    teacher = TrainedTeacher(None, InputNorm(), "t" * 64, 1000)  # IG never runs the teacher
    (written,) = train_points(tiny_splits, job, cfg, sweeps_cfg, teacher, pre, Runtime(log=lambda m: None))
    stored = json.loads(metrics_path.read_text())
    assert stored["val_acc"] == written["val_acc"] and 0 <= stored["val_acc"] <= 100
    assert stored["n_train"] == n_train - len(tiny_splits.val_index) and stored["n_val"] == len(tiny_splits.val_index)
    assert stored["p"] == 0.0 and stored["epochs"] == 1 and stored["method"] == "IG"
    history = pd.read_csv(history_path)
    assert "val_acc" in history and "test_acc" not in history and "test_acc" not in stored


def test_sweep_and_figure_config_keys_have_description_and_default():
    from igkd.config import load_schema

    def leaves(schema, path):
        for name, sub in schema.get("properties", {}).items():
            if sub.get("type") == "object" and "properties" in sub:
                yield from leaves(sub, f"{path}.{name}")
            else:
                yield f"{path}.{name}", sub

    schema = load_schema()["properties"]
    found = [(key, sub) for section in ("sweeps", "figures") for key, sub in leaves(schema[section], section)]
    assert len(found) > 15
    for key, sub in found:
        assert sub.get("description") and "default" in sub, key
