"""Device type, precision and threads in runs.csv and the sweep tables, and the refusal to
pool runs of different device types or precisions (igkd.analysis.conditions, issue 24)."""

from __future__ import annotations

import re
import runpy
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from igkd.analysis import sweeps
from igkd.analysis.collect import method_means, run_costs, runs_table
from igkd.analysis.conditions import check_conditions, mixed_conditions
from igkd.io import InputError, write_csv, write_json

ALLOW = "retrain them under one runtime.device type and runtime.precision, or set stats.allow_mixed_conditions: true"


def environment(device: str, precision: str, threads: int) -> dict:
    """A metrics.json `environment` as igkd.training.loop.environment writes it."""
    return {
        "device": "cuda:1" if device == "cuda" else device,
        "device_type": device,
        "threads": threads,
        "precision": precision,
        "eval_precision": "fp32",
    }


def student(tmp_path, method: str, run: int, acc: float, conditions=("cpu", "fp32", 4)) -> str:
    path = tmp_path / "students" / method / f"run{run}" / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(
        path,
        {
            "method": method,
            "control": False,
            "student": "mobilenetv2-drop5",
            "factor": 4.12,
            "paper_factor": 4.12,
            "run": run,
            "seed": run,
            "fraction": 1.0,
            "n_train": 90,
            "subsample_sha": f"s{run}",
            "test_acc": acc,
            "val_acc": None,
            "params": 1000,
            "epochs": 3,
            "environment": environment(*conditions),
        },
    )
    return str(path)


def mixed_runs(tmp_path) -> list[str]:
    """Student on the CPU in fp32; KD twice on a GPU in bf16 and once on the CPU."""
    gpu = ("cuda", "bf16", 8)
    return [
        *(student(tmp_path, "Student", r, 90.0 + r) for r in range(3)),
        student(tmp_path, "KD", 0, 91.0, gpu),
        student(tmp_path, "KD", 1, 92.5, gpu),
        student(tmp_path, "KD", 2, 91.5),
    ]


def test_runs_csv_records_device_precision_and_threads(tmp_path):
    runs = runs_table(mixed_runs(tmp_path), teacher_acc=95.0)
    assert {"device", "precision", "threads"} <= set(runs.columns)
    by_run = runs.set_index(["method", "run"])[["device", "precision", "threads"]]
    assert by_run.loc[("KD", 0)].tolist() == ["cuda", "bf16", 8]  # the type, not cuda:1: the same on every GPU
    assert by_run.loc[("Student", 2)].tolist() == ["cpu", "fp32", 4]
    # written twice, the same bytes (no clock time in the table)
    write_csv(tmp_path / "a.csv", runs)
    write_csv(tmp_path / "b.csv", runs_table(mixed_runs(tmp_path), teacher_acc=95.0))
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_means_never_average_runs_of_different_conditions(tmp_path):
    means = method_means(runs_table(mixed_runs(tmp_path), 95.0), ["Student", "KD"])
    kd = means[means["method"] == "KD"].set_index("precision")
    assert kd.loc["bf16", "n"] == 2 and kd.loc["bf16", "mean"] == pytest.approx(91.75)
    assert kd.loc["fp32", "n"] == 1 and kd.loc["fp32", "mean"] == 91.5


def test_pooling_mixed_precisions_is_refused_in_one_line_naming_the_groups(tmp_path):
    runs = runs_table(mixed_runs(tmp_path), 95.0)
    line = (
        "runs.csv: runs trained under different device types or precisions would be pooled and compared as if "
        "alike: cpu fp32 (method KD student mobilenetv2-drop5: 1 run; method Student student mobilenetv2-drop5: "
        f"3 runs), cuda bf16 (method KD student mobilenetv2-drop5: 2 runs); {ALLOW}"
    )
    assert mixed_conditions(runs, ("method", "student"), "runs.csv") == line
    with pytest.raises(InputError, match="^" + re.escape(line) + "$"):
        check_conditions(runs, ("method", "student"), "runs.csv", allow=False)
    logged = []
    check_conditions(runs, ("method", "student"), "runs.csv", allow=True, log=logged.append)
    assert logged == [f"warning (stats.allow_mixed_conditions: true, so pooled anyway): {line}"]
    # one condition throughout (threads may differ: rounding only): nothing to say
    alike = runs.assign(device="cuda", precision="bf16", threads=range(len(runs)))
    assert mixed_conditions(alike, ("method", "student"), "runs.csv") is None
    # a GPU fp32 run is not a CPU fp32 run either
    devices = runs.assign(precision="fp32")
    assert mixed_conditions(devices, ("method", "student"), "t").startswith("t: runs trained under different device")


def test_runs_tables_sort_students_by_family_then_size_not_by_text(tmp_path):
    """mobilenetv2-drop3 before mobilenetv2-drop11 (text order would swap them), the registry's
    families in its order: runs.csv, run costs and the mean table (equal factors here)."""
    paths = []
    for k, name in enumerate(["resnet-depth8", "mobilenetv2-drop11", "mobilenetv2-drop3"]):
        path = student(tmp_path / name, "KD", 0, 90.0 + k)
        metrics = pd.read_json(path, typ="series").to_dict()
        write_json(path, {**metrics, "student": name})
        write_json(Path(path).with_name("runtime.json"), {"seconds": 10.0 + k})
        paths.append(path)
    order = ["mobilenetv2-drop3", "mobilenetv2-drop11", "resnet-depth8"]
    runs = runs_table(paths, 95.0)
    assert list(runs["student"]) == order
    assert list(runs["test_acc"]) == [92.0, 91.0, 90.0]
    assert list(method_means(runs)["student"]) == order
    costs = run_costs([str(Path(p).with_name("runtime.json")) for p in paths])
    assert list(costs["student"]) == order and list(costs["seconds"]) == [12.0, 11.0, 10.0]


def test_a_runs_table_without_conditions_or_a_run_without_a_precision_is_refused(tmp_path):
    old = runs_table(mixed_runs(tmp_path), 95.0).drop(columns=["device", "precision"])
    with pytest.raises(InputError, match=re.escape("old.csv: missing column(s) ['device', 'precision']; rerun")):
        check_conditions(old, ("method", "student"), "old.csv", allow=True)
    path = student(tmp_path, "KD", 7, 90.0)
    metrics = pd.read_json(path, typ="series").to_dict()
    del metrics["environment"]["precision"]
    write_json(path, metrics)
    with pytest.raises(InputError, match=re.escape(f"{path}: missing keys ['environment.precision'] (written before")):
        runs_table([path], 95.0)


def fake_snakemake(tmp_path, runs_csv, allow: bool) -> SimpleNamespace:
    """What run_stats.py reads of the `snakemake` object Snakemake hands a script."""
    return SimpleNamespace(
        input=SimpleNamespace(runs=str(runs_csv), runtime=[]),
        output=SimpleNamespace(summary=str(tmp_path / "stats" / "summary.csv")),
        params=SimpleNamespace(
            methods=["Student", "KD"],
            stats={"alpha": 0.05, "power": {"power": 0.8, "target_diff": 0.5}, "allow_mixed_conditions": allow},
        ),
        log=[str(tmp_path / "run_stats.log")],
    )


@pytest.mark.parametrize("allow", [False, True])
def test_run_stats_refuses_mixed_runs_before_any_statistics(repo, tmp_path, monkeypatch, allow):
    """The workflow's run_stats script: no summary from a mix of CPU fp32 and GPU bf16
    runs, unless stats.allow_mixed_conditions is true (then the log says it pooled them)."""
    runs_csv = tmp_path / "runs.csv"
    write_csv(runs_csv, runs_table(mixed_runs(tmp_path), 95.0))
    before = sys.stderr
    monkeypatch.setattr(sys, "stderr", before)  # log_to redirects both for the job: restored after
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    script = str(repo / "workflow/scripts/run_stats.py")
    try:
        if allow:
            runpy.run_path(script, init_globals={"snakemake": fake_snakemake(tmp_path, runs_csv, allow)})
        else:
            with pytest.raises(InputError, match=f"^{re.escape(str(runs_csv))}: runs trained under different"):
                runpy.run_path(script, init_globals={"snakemake": fake_snakemake(tmp_path, runs_csv, allow)})
    finally:
        if sys.stderr is not before:
            sys.stderr.close()  # the job's log file
    assert (tmp_path / "stats" / "summary.csv").exists() == allow
    log = (tmp_path / "run_stats.log").read_text()
    assert ("warning (stats.allow_mixed_conditions: true, so pooled anyway)" in log) == allow


def test_sweep_tables_record_conditions_and_refuse_a_mixed_grid(tmp_path):
    paths = []
    for p, conditions in ((0.1, ("cpu", "fp32", 2)), (0.2, ("cuda", "fp16", 2))):
        path = tmp_path / f"p{p}.json"
        write_json(
            path,
            {
                "sweep": "overlay_p",
                "method": "IG",
                "student": "mobilenetv2-drop5",
                "run": 0,
                "seed": 0,
                "p": p,
                "n_train": 90,
                "n_val": 10,
                "epochs": 3,
                "val_acc": 80.0,
                "environment": environment(*conditions),
            },
        )
        paths.append(str(path))
    table = sweeps.sweep_table(paths)
    rows = table[["p", "device", "precision", "threads"]].values.tolist()
    assert rows == [[0.1, "cpu", "fp32", 2], [0.2, "cuda", "fp16", 2]]
    with pytest.raises(InputError, match=re.escape("overlay_p.csv: runs trained under different device types")):
        check_conditions(table, sweeps.point_columns(table), "overlay_p.csv", allow=False)
