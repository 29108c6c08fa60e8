"""Scientific controls: shuffled rows are real derangements, reference_defect reproduces the
reference code's misalignment while the default path stays aligned, @attribution names,
and the controls' statistics and figure."""

import copy
import re

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from captum.attr import IntegratedGradients
from scipy import stats as st
from statsmodels.stats.multitest import multipletests

from igkd import registry
from igkd.analysis.control_stats import check_runs, control_comparisons, write_control_stats
from igkd.attribution.precompute import AttributionJob, Records, load_precomputed, precompute
from igkd.attribution.reference_defect import ReferenceLoader, precompute_reference_defect, source_indices
from igkd.config import validate_config
from igkd.controls import class_derangement, derangement, loader_order, teacher_rows
from igkd.io import InputError
from igkd.runtime import Runtime
from igkd.training.augment import InputNorm, normalize
from igkd.training.methods import METHODS, Method, all_method_names, get_method, precompute_stem
from igkd.training.teacher import TrainedTeacher
from test_workflow import CONTROLS as WORKFLOW_CONTROLS
from test_workflow import TINY as WORKFLOW_TINY

MEAN, STD = [0.3, 0.3, 0.3], [0.3, 0.3, 0.3]
SETTINGS = {"steps": 4, "method": "gausslegendre", "internal_batch_size": 64}
PROVENANCE = {"data_checksum": "d" * 64, "teacher_checksum": "t" * 64}
N, PAD, SEED = 48, 1, 7


# --------------------------------------------------------------------------- names


def test_attribution_suffix_names():
    assert {"ig", "saliency", "smoothgrad", "gradientshap", "gradcam", "random"} <= set(registry.ATTRIBUTIONS)
    assert [a for a, entry in registry.ATTRIBUTIONS.items() if entry.control] == ["random"]
    assert get_method("KD_IG@saliency") == Method(kd=True, ig=True, attribution="saliency")
    assert get_method("IG@random").control and not get_method("IG@saliency").control
    assert get_method("shuffled_IG@smoothgrad").shuffle_maps
    assert precompute_stem("KD_IG", "ig") == "ig" and precompute_stem("KD_IG", "saliency") == "saliency"
    assert precompute_stem("KD_IG@gradientshap", "ig") == "gradientshap"
    assert precompute_stem("KD", "ig") == "ig" and precompute_stem("AT", "ig") is None
    assert precompute_stem("reference_defect", "ig") == "ig_reference_defect"
    assert precompute_stem("reference_defect@saliency", "ig") == "saliency_reference_defect"
    for bad, message in [
        ("KD@saliency", "KD has no overlay"),
        ("IG@foo", "unknown attribution 'foo'"),
        ("KDX@ig", "unknown method 'KDX@ig'"),
    ]:
        with pytest.raises(ValueError, match=message):
            get_method(bad)
    assert all(get_method(m).control for m in ("shuffled_IG", "shuffled_KD", "reference_defect", "KD_IG@random"))


def test_schema_accepts_exactly_the_method_names(repo):
    full = yaml.safe_load((repo / "config.yaml").read_text())
    names = all_method_names()
    cfg = copy.deepcopy(full)
    cfg["experiments"]["grid"]["methods"] = names
    cfg["controls"]["methods"] = []
    assert validate_config(cfg)["experiments"]["grid"]["methods"] == names
    for bad in ("KD@saliency", "IG@foo", "IG@", "Student@ig", "KDX"):
        cfg["experiments"]["grid"]["methods"] = ["KD", bad]
        with pytest.raises(InputError, match=rf"experiments.grid.methods.1: .*'{re.escape(bad)}'"):
            validate_config(cfg)


def test_controls_config_is_checked(repo):
    full = yaml.safe_load((repo / "config.yaml").read_text())
    assert validate_config(full)["controls"]["methods"] == WORKFLOW_CONTROLS
    full["controls"]["compare_with"] = ["KD_IG", "shuffled_IG"]
    with pytest.raises(InputError, match=r"controls.methods: \['shuffled_IG'\] also in controls.compare_with"):
        validate_config(full)
    full["controls"] = {"runs": 1}
    with pytest.raises(InputError, match="controls.runs: 1 is less than the minimum of 2"):
        validate_config(full)


# --------------------------------------------------------------------------- shuffled_*


def test_default_rows_aligned_and_shuffled_rows_are_derangements(tiny_splits):
    labels = tiny_splits.train_labels
    n = len(labels)
    seen = {}
    for name, method in METHODS.items():
        source = teacher_rows(method, labels, control_seed=11)
        for rows, shuffled, part in (
            (source.maps, method.shuffle_maps, "maps"),
            (source.logits, method.shuffle_logits, "logits"),
        ):
            if not shuffled:
                assert np.array_equal(rows, np.arange(n)), (name, part)  # aligned: row i feeds image i
                continue
            seen[(part, method.shuffle_scope)] = rows
            assert np.array_equal(np.sort(rows), np.arange(n)), (name, part)  # a real permutation
            assert not (rows == np.arange(n)).any(), (name, part)  # no image keeps its own row
            same = float((labels[rows] == labels).mean())
            if method.shuffle_scope == "class":
                assert same == 1.0, (name, part)  # every source is an image of the same class
                continue
            # across classes: the row an image gets is no more likely than chance to be of its own class
            share = np.bincount(labels, minlength=10) / n
            chance = float((share**2).sum())
            assert abs(same - chance) < 4 * np.sqrt(chance * (1 - chance) / n), (name, part, same, chance)
    assert set(seen) == {(p, s) for p in ("maps", "logits") for s in ("all", "class")}
    assert not np.array_equal(seen["maps", "all"], seen["logits", "all"])
    assert np.array_equal(derangement(n, 11), teacher_rows(METHODS["shuffled_IG"], labels, 11).maps)  # fixed seed
    assert np.array_equal(
        class_derangement(labels, 11)[0], teacher_rows(METHODS["shuffled_IG_in_class"], labels, 11).maps
    )
    with pytest.raises(ValueError, match="at least 2 rows"):
        derangement(1, 0)


def test_within_class_derangement_keeps_only_classes_of_one_image():
    """Each source has the row's class and is never the row itself where the class has two or
    more rows; a class of one image keeps its own row, and the count says so."""
    labels = np.array([3, 1, 3, 3, 7, 1, 3, 9, 1, 3])  # class 7 and class 9 have one image each
    rows, kept = class_derangement(labels, 5)
    assert np.array_equal(labels[rows], labels) and np.array_equal(np.sort(rows), np.arange(len(labels)))
    single = np.isin(labels, [7, 9])
    assert (
        kept == 2
        and np.array_equal(rows[single], np.flatnonzero(single))
        and (rows[~single] != np.flatnonzero(~single)).all()
    )
    assert np.array_equal(class_derangement(labels, 5)[0], rows) and not all(
        np.array_equal(class_derangement(labels, s)[0], rows) for s in range(6, 12)
    )  # fixed by the seed, and the seed matters
    method = METHODS["shuffled_KD_in_class"]
    source = teacher_rows(method, labels, 4)
    train = np.array([0, 2, 4, 5, 7])  # this run's rows: 4 and 7 are the lone images
    assert source.record(method, train, labels) == {
        "control_scope": "class",
        "control_rows_kept": 2,
        "control_same_class": 1.0,
    }
    assert source.record(METHODS["KD"], train, labels) == {}


def test_distiller_feeds_the_rows_teacher_rows_chose(tiny_splits):
    """The training set a student sees holds pre.maps/logits[teacher_rows[rows]]."""
    from igkd.models import build_student
    from igkd.training.augment import InputNorm
    from igkd.training.distiller import Distiller, Overlay, Recipe
    from igkd.training.student import subsample

    n = len(tiny_splits.train_labels)
    rng = np.random.default_rng(0)
    pre = type(
        "Pre",
        (),
        {"logits": rng.normal(size=(n, 10)).astype(np.float32), "maps": rng.random((n, 8, 8), dtype=np.float32)},
    )()
    recipe = Recipe(0.5, 2.0, 0.8, 1, True, Overlay(0.5, 1.0, 2.0, 0.5), InputNorm(), control_seed=3)
    rows = subsample(tiny_splits.train_labels, tiny_splits.train_index, 0.8, 0)
    for name in ("KD_IG", "shuffled_IG", "shuffled_KD", "shuffled_IG_in_class", "shuffled_KD_in_class"):
        data = Distiller(build_student(15), get_method(name), recipe, 0).training_set(tiny_splits, rows, pre, "cpu")
        source = teacher_rows(get_method(name), tiny_splits.train_labels, 3)
        map_rows, logit_rows = source.maps, source.logits
        if data.maps is not None:
            assert np.array_equal(data.maps.numpy(), pre.maps[map_rows[rows]])
            assert np.array_equal(data.maps.numpy(), pre.maps[rows]) == (name == "KD_IG")
        if data.teacher_logits is not None:
            assert np.array_equal(data.teacher_logits.numpy(), pre.logits[logit_rows[rows]])
            assert np.array_equal(data.teacher_logits.numpy(), pre.logits[rows]) == (name == "KD_IG")


# --------------------------------------------------------------------------- reference_defect


class PixelNet(torch.nn.Module):
    """A stand-in teacher whose logits move with every pixel, so a crop or flip shows.

    (A freshly initialised MobileNetV2 outputs logits of ~1e-8 for every image: torchvision
    zero-initialises the last BatchNorm of each residual block.)"""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(torch.tanh(self.conv(x)).flatten(1))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """An aligned and a reference_defect file from one tiny teacher over 48 digits."""
    from igkd.data.digits import load_digits_splits

    splits = load_digits_splits(8, 0.2, 0)
    torch.manual_seed(0)
    teacher = PixelNet().eval()
    images, labels = splits.train_images[:N], splits.train_labels[:N]
    folder = tmp_path_factory.mktemp("reference_defect")
    trained = TrainedTeacher(teacher, InputNorm(tuple(MEAN), tuple(STD)), "t", 0)
    job = AttributionJob("ig", SETTINGS, chunk=16, batch=16)
    runtime, records = Runtime(log=lambda m: None), Records(PROVENANCE)
    precompute(trained, images, labels, folder / "ig.h5", job, runtime, records)
    loader = ReferenceLoader(SEED, PAD, flip=True)
    defect = folder / "ig_reference_defect.h5"
    precompute_reference_defect(trained, images, labels, defect, job, loader, runtime, records)
    load = dict(n_rows=N, image_shape=(8, 8), num_classes=10, **PROVENANCE)
    return {
        "teacher": teacher,
        "images": images,
        "labels": labels,
        "aligned": load_precomputed(folder / "ig.h5", **load),
        "defect": load_precomputed(defect, **load),  # valid input for a student
        "sources": source_indices(defect),
    }


def teacher_input(image_hwc: np.ndarray) -> torch.Tensor:
    return normalize(torch.from_numpy(image_hwc).permute(2, 0, 1)[None].float() / 255, MEAN, STD)


def all_crops_and_flips(image_hwc: np.ndarray):
    """Every (dy, dx, flip) the loader could have drawn, built independently of igkd.training.augment."""
    h, w, _ = image_hwc.shape
    padded = np.pad(image_hwc, ((PAD, PAD), (PAD, PAD), (0, 0)))
    for dy in range(2 * PAD + 1):
        for dx in range(2 * PAD + 1):
            crop = padded[dy : dy + h, dx : dx + w]
            for flip in (False, True):
                yield (dy, dx, flip), np.ascontiguousarray(crop[:, ::-1] if flip else crop)


def ig_map(teacher, image_hwc: np.ndarray, target: int) -> np.ndarray:
    x = teacher_input(image_hwc)
    attr = IntegratedGradients(teacher).attribute(x, baselines=x * 0, target=target, n_steps=4, method="gausslegendre")
    return attr.abs().sum(1)[0].detach().numpy()


def test_reference_defect_row_i_is_another_augmented_image(built):
    """Row i's logits are those of a crop/flip of image logit_source[i], its map that of a
    crop/flip of image map_source[i]: two independently shuffled passes, as the reference
    code's two scripts made them, so the two come from different images."""
    teacher, images, labels = built["teacher"], built["images"], built["labels"]
    (map_source, logit_source), defect, aligned = built["sources"], built["defect"], built["aligned"]
    assert np.array_equal(map_source, loader_order(N, SEED)) and np.array_equal(logit_source, loader_order(N, SEED + 2))
    for source in (map_source, logit_source):
        assert np.array_equal(np.sort(source), np.arange(N))
    assert (map_source != logit_source).mean() > 0.9  # logits and map of a row: different images
    with torch.no_grad():
        own = teacher(torch.cat([teacher_input(im) for im in images])).numpy()
    # default path: row i is image i, un-augmented
    np.testing.assert_allclose(aligned.logits, own, rtol=1e-4, atol=1e-5)
    transforms = []
    for i in range(N):
        candidates = list(all_crops_and_flips(images[logit_source[i]]))
        with torch.no_grad():
            outs = teacher(torch.cat([teacher_input(im) for _, im in candidates])).numpy()
        match = [k for k, out in enumerate(outs) if np.allclose(out, defect.logits[i], rtol=1e-4, atol=1e-5)]
        assert match, f"row {i}: no crop/flip of image {logit_source[i]} gives its logits"
        transforms.append(candidates[match[0]][0])
    for i in range(4):  # the map belongs to an augmented view of map_source[i] (IG recomputed with captum)
        views = [
            ig_map(teacher, im, int(labels[map_source[i]])) for _, im in all_crops_and_flips(images[map_source[i]])
        ]
        assert any(np.allclose(defect.maps[i], v, rtol=1e-3, atol=1e-6) for v in views), f"row {i}: map"
        if map_source[i] != logit_source[i]:  # and not to the image its logits came from
            wrong = [
                ig_map(teacher, im, int(labels[logit_source[i]]))
                for _, im in all_crops_and_flips(images[logit_source[i]])
            ]
            assert not any(np.allclose(defect.maps[i], v, rtol=1e-3, atol=1e-6) for v in wrong), f"row {i}: map"
    # the misalignment is real: row i is not image i's, except where chance kept both image and view
    kept = [i for i in range(N) if logit_source[i] == i and transforms[i] == (PAD, PAD, False)]
    differs = ~np.isclose(defect.logits, own, rtol=1e-4, atol=1e-5).all(1)
    assert differs.sum() == N - len(kept) and len(kept) <= 2
    assert sum(t != (PAD, PAD, False) for t in transforms) > N / 2  # most rows are augmented views
    assert len(set(transforms)) > 6  # crops and flips both vary


# --------------------------------------------------------------------------- statistics and figure


def fake_runs(n_runs=5, means=None):
    rng = np.random.default_rng(0)
    means = means or {"KD_IG": 97.0, "IG": 96.8, "KD": 96.5, "Student": 96.0, "shuffled_IG": 96.9, "IG@random": 95.0}
    rows = [
        {
            "method": m,
            "control": get_method(m).control,
            "student": "mobilenetv2-drop13",
            "factor": 54.59,
            "run": r,
            "seed": r,
            "subsample_sha": f"s{r}",
            "test_acc": mu + rng.normal(0, 0.3),
        }
        for m, mu in means.items()
        for r in range(n_runs)
    ]
    return pd.DataFrame(rows)


def test_control_comparisons_family_and_labels(tmp_path):
    runs = fake_runs()
    controls, compare_with = ["shuffled_IG", "IG@random"], ["KD_IG", "IG", "KD", "Student"]
    comps = control_comparisons(runs, controls, compare_with)
    assert sorted(zip(comps["method"], comps["baseline"])) == sorted((c, b) for c in controls for b in compare_with)
    assert comps["control"].all() and (comps["test"] == "paired").all()  # runs share seed and subsample
    np.testing.assert_allclose(comps["p_holm"], multipletests(comps["p"], method="holm")[1])
    # simultaneous intervals over this family (m = 8), not the 14 comparisons compare() made
    d = runs[runs.method == "IG@random"].sort_values("run").test_acc.to_numpy()
    d = d - runs[runs.method == "KD"].sort_values("run").test_acc.to_numpy()
    half = st.t.ppf(1 - 0.05 / 16, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    row = comps[(comps["method"] == "IG@random") & (comps["baseline"] == "KD")].iloc[0]
    assert (row["diff_sci_low"], row["diff_sci_high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    assert (comps["diff_sci_low"] < comps["diff_ci_low"]).all() and (
        comps["diff_ci_high"] < comps["diff_sci_high"]
    ).all()
    random_vs_student = comps[(comps["method"] == "IG@random") & (comps["baseline"] == "Student")].iloc[0]
    assert random_vs_student["diff"] == pytest.approx(
        runs[runs.method == "IG@random"].test_acc.mean() - runs[runs.method == "Student"].test_acc.mean()
    )
    paths = {k: tmp_path / f"controls_{k}.csv" for k in ("runs", "summary", "comparisons", "levels")}
    paths["markdown"] = tmp_path / "controls.md"
    write_control_stats(runs, paths, controls=controls, compare_with=compare_with, student="mobilenetv2-drop13")
    summary = pd.read_csv(paths["summary"])
    assert list(summary["method"]) == [*compare_with, *controls]
    assert list(summary["control"]) == [False] * 4 + [True] * 2
    assert list(summary["label"])[-2:] == ["shuffled_IG (control)", "IG@random (control)"]
    assert {"ci_low", "ci_high", "n"} <= set(summary.columns) and (summary["n"] == 5).all()
    md = paths["markdown"].read_text()
    assert "| shuffled_IG (control) |" in md and "Holm over the 8 tests" in md and "noise maps" in md
    assert "simultaneous 99.38 % (Bonferroni, 1 − α/m)" in md  # 1 - 0.05/8
    assert md.startswith("# Is it the knowledge? Controls of mobilenetv2-drop13 (compression factor 54.59)")
    with pytest.raises(InputError, match=r"no runs of \['shuffled_KD'\] of student mobilenetv2-drop13"):
        check_runs(runs, ["shuffled_KD"], compare_with, "mobilenetv2-drop13")
    with pytest.raises(InputError, match=r"no runs of \['KD_IG', 'IG', 'KD', 'Student'\] of student mobilenetv2-drop5"):
        check_runs(runs, [], compare_with, "mobilenetv2-drop5")


LEVEL_MEANS = {
    "KD": 97.0,
    "IG": 96.8,
    "Student": 95.0,
    "shuffled_KD_in_class": 96.0,
    "shuffled_KD": 94.0,
    "shuffled_IG_in_class": 96.7,
    "shuffled_IG": 96.6,
}


def test_three_levels_table_and_their_tests(tmp_path):
    """KD and IG each at three levels: the family adds within- vs across-class to every
    control vs every comparison method, and the levels table steps down one level at a time."""
    from igkd.analysis.control_stats import information_levels, level_pairs

    runs = fake_runs(6, LEVEL_MEANS)
    controls = ["shuffled_KD_in_class", "shuffled_KD", "shuffled_IG_in_class", "shuffled_IG"]
    compare_with = ["KD", "IG", "Student"]
    assert level_pairs(controls) == [("shuffled_KD_in_class", "shuffled_KD"), ("shuffled_IG_in_class", "shuffled_IG")]
    assert level_pairs(["shuffled_KD", "shuffled_IG_in_class"]) == []
    comps = control_comparisons(runs, controls, compare_with)
    expected = {(c, b) for c in controls for b in compare_with} | set(level_pairs(controls))
    assert set(zip(comps["method"], comps["baseline"])) == expected and len(comps) == 14
    np.testing.assert_allclose(comps["p_holm"], multipletests(comps["p"], method="holm")[1])
    paths = {k: tmp_path / f"controls_{k}.csv" for k in ("runs", "summary", "comparisons", "levels")}
    paths["markdown"] = tmp_path / "controls.md"
    out = write_control_stats(runs, paths, controls=controls, compare_with=compare_with, student="mobilenetv2-drop13")
    levels = information_levels(out["summary"], out["comparisons"])
    written = pd.read_csv(paths["levels"]).fillna({"vs": ""})  # the figure's input
    pd.testing.assert_frame_equal(written, levels, check_dtype=False)
    kd = levels[levels["part"] == "KD"]
    assert list(kd["level"]) == ["aligned", "shuffled within class", "shuffled across classes"]
    assert list(kd["method"]) == ["KD", "shuffled_KD_in_class", "shuffled_KD"]
    assert list(kd["vs"]) == ["", "KD", "shuffled_KD_in_class"]
    mean = runs.groupby("method")["test_acc"].mean()
    np.testing.assert_allclose(
        kd["diff"].iloc[1:],
        [mean["shuffled_KD_in_class"] - mean["KD"], mean["shuffled_KD"] - mean["shuffled_KD_in_class"]],
    )
    step = comps[(comps["method"] == "shuffled_KD_in_class") & (comps["baseline"] == "shuffled_KD")]  # tested this way
    assert kd["p_holm"].iloc[2] == pytest.approx(float(step["p_holm"].iloc[0])) and np.isnan(kd["p_holm"].iloc[0])
    md = paths["markdown"].read_text()
    assert "## Three levels of teacher information" in md
    assert re.search(r"\| KD +\| shuffled within class +\| shuffled_KD_in_class +\|", md)


def test_fig_controls_draws_the_three_levels(tmp_path, monkeypatch):
    import igkd.plots.controls as plot
    from igkd.analysis.control_stats import control_comparisons, control_summary, information_levels

    runs = fake_runs(4, LEVEL_MEANS)
    summary = control_summary(runs, list(LEVEL_MEANS))
    controls = [m for m in LEVEL_MEANS if m.startswith("shuffled")]
    levels = information_levels(summary, control_comparisons(runs, controls, ["KD", "IG", "Student"]))
    seen = {}
    real_save = plot.save_figure

    def keep(fig, pdf, png):
        ax = fig.axes[1]
        seen["ticks"] = [t.get_text() for t in ax.get_xticklabels()]
        seen["lines"] = {c.get_label(): c.lines[0].get_ydata() for c in ax.containers}
        seen["lines"].update(
            {line.get_label(): line.get_ydata() for line in ax.get_lines() if "Student" in line.get_label()}
        )
        real_save(fig, pdf, png)

    monkeypatch.setattr(plot, "save_figure", keep)
    plot.fig_controls(summary, runs, 98.0, str(tmp_path / "c.pdf"), str(tmp_path / "c.png"), levels)
    assert seen["ticks"] == ["aligned", "shuffled\nwithin class", "shuffled\nacross classes"]
    mean = runs.groupby("method")["test_acc"].mean()
    np.testing.assert_allclose(seen["lines"]["KD"], mean[["KD", "shuffled_KD_in_class", "shuffled_KD"]])
    np.testing.assert_allclose(seen["lines"]["IG"], mean[["IG", "shuffled_IG_in_class", "shuffled_IG"]])
    assert np.allclose(seen["lines"]["Student (no teacher)"], mean["Student"])


def test_fig_controls_levels_panel_cuts_intervals_at_100(tmp_path, monkeypatch):
    """Two runs give t-intervals far past 100 %; the levels panel cuts its axis at the possible
    range and says so, as the left panel does (the demo's panel ran to 160 % before)."""
    import igkd.plots.controls as plot
    from igkd.analysis.control_stats import control_comparisons, control_summary, information_levels

    runs = fake_runs(2, LEVEL_MEANS)
    runs.loc[runs["run"] == 1, "test_acc"] -= 3.0  # a spread of ~3 pp between two runs: t(1) intervals of ~±20 pp
    summary = control_summary(runs, list(LEVEL_MEANS))
    controls = [m for m in LEVEL_MEANS if m.startswith("shuffled")]
    levels = information_levels(summary, control_comparisons(runs, controls, ["KD", "IG", "Student"]))
    assert levels["ci_high"].max() > 100  # the case under test
    seen = {}
    real_save = plot.save_figure

    def keep(fig, pdf, png):
        seen["ylim"], seen["ylabel"] = fig.axes[1].get_ylim(), fig.axes[1].get_ylabel()
        real_save(fig, pdf, png)

    monkeypatch.setattr(plot, "save_figure", keep)
    plot.fig_controls(summary, runs, 98.0, str(tmp_path / "c.pdf"), str(tmp_path / "c.png"), levels)
    low, high = seen["ylim"]
    assert high <= 100 + 0.05 * 100 + 0.1 and low >= -0.1 - 0.05 * 100
    assert "axis cut at 0-100 %" in seen["ylabel"]


def test_fig_controls_marks_controls(tmp_path, monkeypatch):
    import igkd.plots.controls as plot
    from igkd.analysis.control_stats import control_summary

    runs = fake_runs()
    summary = control_summary(runs, ["KD_IG", "IG", "KD", "Student", "shuffled_IG", "IG@random"], confidence=0.9)
    seen = {}
    real_save = plot.save_figure

    def keep(fig, pdf, png):
        ax = fig.axes[0]
        seen["title"] = ax.get_title()
        seen["labels"] = [t.get_text() for t in ax.get_yticklabels()]
        seen["red"] = [t.get_text() for t in ax.get_yticklabels() if t.get_color() == plot.CONTROL_STYLE["color"]]
        seen["hatched"] = sum(1 for p in ax.patches if p.get_hatch() == "///")
        real_save(fig, pdf, png)

    monkeypatch.setattr(plot, "save_figure", keep)
    plot.fig_controls(summary, runs, 98.0, str(tmp_path / "c.pdf"), str(tmp_path / "c.png"))
    assert seen["labels"][0] == "IG@random (control)" and seen["labels"][-1] == "KD_IG"
    assert "mean, 90 % CI" in seen["title"]  # the summary's level (1 - stats.alpha), not a fixed 95 %
    assert seen["title"].startswith("Controls of mobilenetv2-drop13 (54.59x the teacher)")
    assert sorted(seen["red"]) == ["IG@random (control)", "shuffled_IG (control)"] and seen["hatched"] == 2
    assert (tmp_path / "c.png").stat().st_size > 1000 and (tmp_path / "c.pdf").stat().st_size > 1000


# --------------------------------------------------------------------------- workflow

TINY = {
    "dataset": WORKFLOW_TINY["dataset"],
    "teacher": WORKFLOW_TINY["teacher"],
    "precompute": {"chunk": 512, "ig": {"steps": 4}},
    "experiments": {
        "ablation": {"methods": ["Student"], "students": ["mobilenetv2-drop13"], "runs": 1, "fraction": 0.8},
        "montecarlo": {"enabled": False},
        "compression": {"enabled": False},
    },
    "students": {"epochs": 1, "crop_padding": 1, "eval_every": 1},
    "controls": {"methods": ["reference_defect", "IG@random"], "compare_with": ["Student"], "runs": 2},
    "runtime": {"device": "cpu", "threads": {"teacher": 1, "precompute": 1, "student": 1}},
}


@pytest.mark.e2e
def test_controls_target_end_to_end(repo, tmp_path):
    """`snakemake controls` on a tiny config: the misaligned file, the control students, the
    labelled tables and the figure; a second call has nothing to do."""
    import shutil
    import subprocess
    import sys

    for name in ("Snakefile", "config.yaml"):
        shutil.copy(repo / name, tmp_path / name)
    for folder in ("workflow", "envs"):
        shutil.copytree(repo / folder, tmp_path / folder)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY))

    def snakemake(*args):
        cmd = [
            sys.executable,
            "-m",
            "snakemake",
            "--cores",
            "2",
            "--directory",
            str(tmp_path),
            *args,
            "--configfile",
            "config.yaml",
            "tiny.yaml",
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600)
        return done.returncode, done.stdout + done.stderr

    code, out = snakemake("controls")
    assert code == 0, out
    results = tmp_path / "results/digits"
    assert all(index.shape == (1437,) for index in source_indices(results / "precompute/ig_reference_defect.h5"))
    assert (results / "precompute/random.h5").exists()
    runs = pd.read_csv(results / "tables/controls_runs.csv")
    assert sorted(runs["method"].unique()) == ["IG@random", "Student", "reference_defect"]
    assert (runs.groupby("method")["run"].count() == 2).all()
    assert runs.set_index("method")["control"].groupby(level=0).all().to_dict() == {
        "IG@random": True,
        "Student": False,
        "reference_defect": True,
    }
    comps = pd.read_csv(results / "stats/controls_comparisons.csv")
    assert sorted(zip(comps["method"], comps["baseline"])) == [
        ("IG@random", "Student"),
        ("reference_defect", "Student"),
    ]
    assert "reference_defect (control)" in (results / "stats/controls.md").read_text()
    assert (results / "figures/controls.png").stat().st_size > 1000
    code, out = snakemake("-n", "controls")
    assert code == 0 and "Nothing to be done" in out, out
