"""`igkd migrate`: a results folder of the drop layout moved to student ids (igkd.migrate)."""

from __future__ import annotations

import json

import pytest

from igkd.cli import main
from igkd.io import InputError, write_json
from igkd.migrate import kept_outputs, migrate


def old_layout(root):
    """A results folder as igkd wrote it before student ids: one run, one sweep point."""
    results, logs = root / "results/digits", root / "logs/digits"
    run = results / "students/KD_IG@saliency/drop13/f0.8/run1"
    run.mkdir(parents=True)
    write_json(run / "metrics.json", {"method": "KD_IG@saliency", "drop": 13, "run": 1, "test_acc": 91.5})
    (run / "model.pt").write_bytes(b"weights")
    point = results / "sweeps/kd/a0.01_t2.5/run0"
    point.mkdir(parents=True)
    write_json(point / "metrics.json", {"sweep": "kd", "drop": 5, "val_acc": 80.0})
    (results / "benchmarks/students").mkdir(parents=True)
    (results / "benchmarks/students/KD_IG@saliency_drop13_f0.8_run1.tsv").write_text("s\n1\n")
    (results / "benchmarks/train_teacher.tsv").write_text("s\n1\n")
    (results / "teacher").mkdir()
    (results / "teacher/model.pt").write_bytes(b"teacher")
    (results / "tables/ablation").mkdir(parents=True)
    (results / "tables/ablation/runs.csv").write_text("method,drop\n")
    (logs / "students").mkdir(parents=True)
    (logs / "students/KD_IG@saliency_drop13_f0.8_run1.log").write_text("log\n")
    return results, logs


def test_migrate_moves_runs_benchmarks_logs_and_metrics_to_student_ids(tmp_path):
    results, logs = old_layout(tmp_path)
    done = migrate(results, logs)
    run = results / "students/KD_IG@saliency/mobilenetv2-drop13/f0.8/run1"
    assert (run / "model.pt").read_bytes() == b"weights"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["student"] == "mobilenetv2-drop13" and "drop" not in metrics and metrics["test_acc"] == 91.5
    sweep = json.loads((results / "sweeps/kd/a0.01_t2.5/run0/metrics.json").read_text())
    assert sweep["student"] == "mobilenetv2-drop5" and "drop" not in sweep
    assert (results / "benchmarks/students/KD_IG@saliency_mobilenetv2-drop13_f0.8_run1.tsv").is_file()
    assert (logs / "students/KD_IG@saliency_mobilenetv2-drop13_f0.8_run1.log").is_file()
    assert len(done.renamed) == 3 and len(done.rewritten) == 2
    kept = {str(p.relative_to(results)) for p in kept_outputs(results)}
    assert "teacher/model.pt" in kept and "benchmarks/train_teacher.tsv" in kept
    assert "students/KD_IG@saliency/mobilenetv2-drop13/f0.8/run1/model.pt" in kept
    assert "tables/ablation/runs.csv" not in kept  # made again, with the student column
    again = migrate(results, logs)  # a second run finds nothing left to move
    assert again.renamed == [] and again.rewritten == []


def test_migrate_refuses_a_folder_that_is_not_results_and_a_clash(tmp_path, capsys):
    with pytest.raises(InputError, match="no students/ or sweeps/ folder: not a results folder"):
        migrate(tmp_path, None)
    results, logs = old_layout(tmp_path)
    (results / "students/KD_IG@saliency/mobilenetv2-drop13").mkdir()
    (results / "students/KD_IG@saliency/mobilenetv2-drop13/keep").write_text("x")
    with pytest.raises(InputError, match="mobilenetv2-drop13 exists too; move one of them away first"):
        migrate(results, logs)
    assert main(["migrate", str(tmp_path / "nothing")]) == 2
    assert "not a results folder" in capsys.readouterr().err


def test_the_command_prints_the_cleanup_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    old_layout(tmp_path)
    assert main(["migrate", "results/digits"]) == 0
    out = capsys.readouterr().out
    assert "results/digits: 3 folders and files renamed, 2 metrics files rewritten" in out
    line = out.strip().splitlines()[-1]
    assert line.startswith("  snakemake --cleanup-metadata ") and "results/digits/teacher/model.pt" in line
