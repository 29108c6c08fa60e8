"""fig_latency, fig_compression's speed-up panel and fig_imagenet write PDF + PNG from small tables."""

import pandas as pd
import pytest

from igkd.analysis.stats import summarize
from igkd.io import InputError
from igkd.plots.compression import fig_compression
from igkd.plots.imagenet import external_summary, fig_imagenet
from igkd.plots.latency import fig_latency

METHODS = ["Student", "KD", "KD_IG"]


@pytest.fixture
def runs():
    rows = []
    for student, factor, base in (("mobilenetv2-drop5", 4.12, 90.0), ("mobilenetv2-drop13", 54.59, 84.0)):
        for i, method in enumerate(METHODS):
            for run in range(3):
                rows.append(
                    {
                        "method": method,
                        "student": student,
                        "factor": factor,
                        "run": run,
                        "test_acc": base + 0.3 * i + 0.2 * run,
                    }
                )
    return pd.DataFrame(rows)


@pytest.fixture
def timing():
    rows = [("teacher", "teacher", 1.0, 1, 5.0), ("teacher", "teacher", 1.0, 64, 140.0)]
    rows += [
        ("student", "mobilenetv2-drop13", 54.59, 1, 1.0),
        ("student", "mobilenetv2-drop13", 54.59, 64, 5.5),
        ("student", "mobilenetv2-drop5", 4.12, 1, 2.0),
        ("student", "mobilenetv2-drop5", 4.12, 64, 13.3),
    ]
    frame = pd.DataFrame(rows, columns=["model", "student", "factor", "batch", "median_ms"])
    frame["q1_ms"], frame["q3_ms"] = frame["median_ms"] * 0.95, frame["median_ms"] * 1.1
    frame["device"], frame["threads"] = "cpu", 1
    return frame


def _written(tmp_path, stem):
    for suffix in ("pdf", "png"):
        assert (tmp_path / f"{stem}.{suffix}").stat().st_size > 1000
    return True


def test_fig_latency_and_the_speedup_panel_are_written(runs, timing, tmp_path):
    summary = summarize(runs, method_order=METHODS)
    fig_latency(summary, timing, 93.9, METHODS, str(tmp_path / "latency.pdf"), str(tmp_path / "latency.png"))
    assert _written(tmp_path, "latency")
    fig_compression(summary, 93.9, METHODS, str(tmp_path / "c.pdf"), str(tmp_path / "c.png"), timing=timing)
    assert _written(tmp_path, "c")


def test_fig_latency_needs_timing_of_teacher_and_students(runs, timing, tmp_path):
    summary = summarize(runs, method_order=METHODS)
    with pytest.raises(InputError, match="timing rows of the teacher"):
        fig_latency(
            summary,
            timing[timing["model"] == "student"],
            93.9,
            METHODS,
            str(tmp_path / "a.pdf"),
            str(tmp_path / "a.png"),
        )


@pytest.fixture
def external(runs):
    students = runs.rename(columns={"test_acc": "accuracy"}).assign(model="student", n=200)
    students["accuracy"] -= 25.0
    teacher = pd.DataFrame(
        [
            {
                "model": "teacher",
                "method": "teacher",
                "student": "teacher",
                "factor": float("nan"),
                "run": 0,
                "accuracy": 67.4,
                "n": 200,
            }
        ]
    )
    return pd.concat([teacher, students], ignore_index=True)


def test_external_summary_is_mean_and_ci_over_runs(external):
    summary = external_summary(external, METHODS).set_index(["method", "student"])
    row = summary.loc[("KD", "mobilenetv2-drop5")]
    assert row["n"] == 3 and row["mean"] == pytest.approx(90.0 + 0.3 + 0.2 - 25.0)
    assert row["ci_low"] < row["mean"] < row["ci_high"]


def test_fig_imagenet_is_written_and_needs_one_teacher_row(external, tmp_path):
    fig_imagenet(external, METHODS, "generated results", str(tmp_path / "i.pdf"), str(tmp_path / "i.png"))
    assert _written(tmp_path, "i")
    with pytest.raises(InputError, match="expected one teacher row, got 0"):
        fig_imagenet(
            external[external["model"] == "student"], METHODS, "t", str(tmp_path / "j.pdf"), str(tmp_path / "j.png")
        )


def test_figure_titles_name_the_level_of_their_intervals(runs, timing, external, tmp_path, monkeypatch):
    """The bars are t-intervals at 1 - stats.alpha; with alpha 0.1 every title says 90 %, none 95 %."""
    import igkd.plots.compression
    import igkd.plots.imagenet
    import igkd.plots.latency

    titles = []

    def keep(fig, pdf, png):
        titles.append(
            " | ".join([fig._suptitle.get_text() if fig._suptitle else ""] + [a.get_title() for a in fig.axes])
        )

    for module in (igkd.plots.compression, igkd.plots.imagenet, igkd.plots.latency):
        monkeypatch.setattr(module, "save_figure", keep)
    summary = summarize(runs, confidence=0.9, method_order=METHODS)
    fig_compression(summary, 93.9, METHODS, str(tmp_path / "c.pdf"), str(tmp_path / "c.png"))
    fig_latency(summary, timing, 93.9, METHODS, str(tmp_path / "l.pdf"), str(tmp_path / "l.png"))
    fig_imagenet(external, METHODS, "subset", str(tmp_path / "i.pdf"), str(tmp_path / "i.png"), confidence=0.9)
    assert len(titles) == 3
    for title in titles:
        assert "90 % CI" in title and "95 %" not in title, title
    kd = ("KD", "mobilenetv2-drop5")
    at90 = external_summary(external, METHODS, confidence=0.9).set_index(["method", "student"]).loc[kd]
    at95 = external_summary(external, METHODS).set_index(["method", "student"]).loc[kd]
    assert at90["ci_high"] < at95["ci_high"] and at90["ci_level"] == 0.9
