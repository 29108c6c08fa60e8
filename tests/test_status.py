"""`igkd status` on fake results folders: runs done / running / to do per stage and
experiment, the time left from the finished runs' measured durations, one line when
nothing has run."""

import os
import time
from pathlib import Path

import pytest
import yaml

from igkd.cli import main
from igkd.config import load_config
from igkd.experiments import Campaign
from igkd.io import write_json
from igkd.status import format_status, status
from igkd.training.progress import epoch_line

REPO = Path(__file__).resolve().parents[1]
STUDENT = "mobilenetv2-drop13"
# The demo config cut down: ablation Student and KD x 2 runs, compression's one Student
# (shared with the ablation), no controls, sweeps of one job each (grouping sweep).
OVERRIDES = {
    "experiments": {
        "ablation": {"methods": ["Student", "KD"], "students": [STUDENT], "runs": 2},
        "montecarlo": {"enabled": False},
        "compression": {"methods": ["Student"], "students": [STUDENT], "runs": 1},
    },
    "controls": {"methods": []},
    "sweeps": {
        "runs": 1,
        "grouping": "sweep",
        "kd": {"alphas": [0.01], "temperatures": [4]},
        "overlay": {"ps": [0, 0.1, 0.5]},
    },
}
BENCH_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
HOUR = 3600.0


@pytest.fixture
def config_files(tmp_path):
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text(yaml.safe_dump(OVERRIDES))
    return [REPO / "config.yaml", REPO / "profiles/demo/demo.yaml", overrides]


@pytest.fixture
def config(config_files):
    return load_config(*config_files)


def benchmark(path: Path, seconds: float) -> None:
    """A Snakemake benchmark file as the rule's `benchmark:` writes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(BENCH_HEADER + f"{seconds}\t0:00:{seconds:02.0f}\t100\t200\t90\t95\t1\t2\t50\t{seconds}\n")


def finished_student(results: Path, run, seconds: float) -> None:
    """A student run_student finished: metrics.json and runtime.json (model etc. omitted)."""
    folder = Path(run.folder(str(results)))
    write_json(folder / "runtime.json", {"seconds": seconds, "started": 0.0, "ended": seconds})
    write_json(folder / "metrics.json", {**run.record(), "test_acc": 90.0})


def log_lines(path: Path, epoch: int, epochs: int, seconds: float = 2.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{"epoch": k, "lr": 0.003, "seconds": seconds, "device": "cpu"} for k in range(1, epoch + 1)]
    path.write_text("device cpu\n" + "".join(epoch_line(r, epochs, [seconds]) + "\n" for r in rows))


def age(path: Path, seconds: float, now: float) -> None:
    os.utime(path, (now - seconds, now - seconds))


@pytest.fixture
def run_in_progress(tmp_path, config):
    """results/digits of a run under way, as the pipeline leaves it (see each step)."""
    now = time.time()
    results = tmp_path / "results" / "digits"
    logs = tmp_path / "logs" / "digits"
    campaign = Campaign.from_config(config)
    student0, student1, kd0, kd1 = (campaign.run(m, STUDENT, 1.0, r) for m in ("Student", "KD") for r in (0, 1))
    # teacher and precompute done
    write_json(results / "teacher/runtime.json", {"seconds": 50.0})
    write_json(results / "teacher/metrics.json", {"test_acc": 95.0})
    (results / "precompute").mkdir(parents=True)
    (results / "precompute/ig.h5").write_bytes(b"h5")
    benchmark(results / "benchmarks/precompute_ig.tsv", 40.0)
    # ablation: two Students done (100 s, 300 s: median 200 s), KD run 0 at epoch 3 of 6
    # now, KD run 1 killed two hours ago after writing a checkpoint
    finished_student(results, student0, 100.0)
    finished_student(results, student1, 300.0)
    kd0_dir, kd1_dir = Path(kd0.folder(str(results))), Path(kd1.folder(str(results)))
    kd0_dir.mkdir(parents=True)
    (kd0_dir / "checkpoint.pt").write_bytes(b"ckpt")
    log_lines(logs / f"students/KD_{STUDENT}_f1.0_run0.log", 3, 6)
    kd1_dir.mkdir(parents=True)
    (kd1_dir / "checkpoint.pt").write_bytes(b"ckpt")
    log_lines(logs / f"students/KD_{STUDENT}_f1.0_run1.log", 2, 6)
    for path in (kd1_dir / "checkpoint.pt", kd1_dir, logs / f"students/KD_{STUDENT}_f1.0_run1.log"):
        age(path, 2 * HOUR, now)
    # kd sweep: its one point done by one job of 30 s; overlay_p: one job training its 3
    # points in turn (Snakemake made their folders at its start), the first done, the
    # second at epoch 1 of 3, the third waiting
    sweeps = results / "sweeps"
    write_json(sweeps / "kd/alpha0.01_T4/run0/metrics.json", {"val_acc": 80.0})
    benchmark(results / "benchmarks/sweeps/kd.tsv", 30.0)
    for point in ("p0", "p0.1", "p0.5"):
        (sweeps / "overlay_p" / point / "run0").mkdir(parents=True)
    write_json(sweeps / "overlay_p/p0/run0/metrics.json", {"val_acc": 80.0})
    log_lines(logs / "sweeps/overlay_p.log", 1, 3)
    return results, now


def by_name(result):
    return {row.name: row for row in result.rows}


def test_counts_and_time_left_from_the_finished_runs(run_in_progress, config):
    results, now = run_in_progress
    result = status(config, results, jobs=2, now=now)
    rows = by_name(result)
    assert list(rows) == ["teacher", "precompute", "ablation", "compression", "kd_grid", "overlay_p"]
    counts = {name: (r.runs, r.done, r.running, r.to_do, r.interrupted) for name, r in rows.items()}
    assert counts == {
        "teacher": (1, 1, 0, 0, 0),
        "precompute": (1, 1, 0, 0, 0),
        "ablation": (4, 2, 1, 1, 1),
        "compression": (1, 1, 0, 0, 0),  # the ablation's Student run 0
        "kd_grid": (1, 1, 0, 0, 0),
        "overlay_p": (3, 1, 1, 1, 0),  # one job: only its first unfinished point runs
    }
    # ablation: median 200 s x (half of the running run + the one to do) / 2 jobs
    assert rows["ablation"].seconds_left == pytest.approx(200 * (0.5 + 1) / 2)
    assert rows["ablation"].basis == "median 3 min per run of its 2 done"
    # overlay_p's job has not finished, so no point of its own is timed: the sweep points'
    # median (kd's 30 s job), x (2/3 of the running point + the waiting one) / 2 jobs
    assert rows["overlay_p"].seconds_left == pytest.approx(30 * (2 / 3 + 1) / 2)
    assert rows["overlay_p"].basis == "median 30 s per run of 1 done sweep points"
    assert rows["teacher"].seconds_left == 0 and rows["teacher"].basis == "all done"
    total = result.total  # the shared Student counted once
    assert (total.runs, total.done, total.running, total.to_do) == (10, 6, 2, 2)
    assert total.seconds_left == pytest.approx((200 * 1.5 + 30 * 5 / 3) / 2)
    assert result.unknown == ()


def test_an_experiment_with_no_run_done_takes_the_median_of_every_done_student_once(run_in_progress, config):
    results, now = run_in_progress
    config = {**config, "experiments": {**config["experiments"]}}
    config["experiments"]["montecarlo"] = {**config["experiments"]["montecarlo"], "enabled": True}
    montecarlo = by_name(status(config, results, now=now))["montecarlo"]
    # the Students of 100 s and 300 s, the first also compression's: counted once
    assert montecarlo.basis == "median 3 min per run of 2 done student runs"
    assert montecarlo.seconds_left == 200.0 * montecarlo.to_do


def test_a_running_stage_without_a_finished_run_is_timed_from_its_log(tmp_path, config):
    """The teacher at epoch 2 of 10, its epochs 30 min each, its log written 40 min ago:
    still running (within two epochs), 8 epochs x 30 min left; nothing else has a basis."""
    now = time.time()
    results = tmp_path / "results" / "digits"
    (results / "teacher").mkdir(parents=True)
    log = tmp_path / "logs/digits/train_teacher.log"
    log_lines(log, 2, 10, seconds=1800.0)
    for path in (log, results / "teacher"):
        age(path, 40 * 60, now)
    result = status(config, results, now=now)
    teacher = by_name(result)["teacher"]
    assert (teacher.running, teacher.seconds_left) == (1, 8 * 1800.0)
    assert result.unknown == ("precompute", "ablation", "compression", "kd_grid", "overlay_p")
    assert result.total.seconds_left == 8 * 1800.0
    text = format_status(result)
    assert "no estimate yet for precompute, ablation, compression, kd_grid, overlay_p" in text
    # with 30-second epochs the same 40 minutes of silence means the job is gone
    log_lines(log, 2, 10, seconds=30.0)
    age(log, 40 * 60, now)
    assert by_name(status(config, results, now=now))["teacher"].running == 0


def test_status_command_prints_the_table(run_in_progress, config_files, capsys):
    results, _ = run_in_progress
    args = ["status", str(results), "--jobs", "2", "--configfile", *map(str, config_files)]
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{results}: 6 of 10 runs done, 2 running"
    assert lines[1].split() == ["experiment", "runs", "done", "running", "to", "do", "time", "left", "basis"]
    ablation = next(line for line in lines if line.startswith("ablation "))
    assert ablation.split()[:6] == ["ablation", "4", "2", "1", "1", "~2"]  # 150 s: ~2 min
    assert "interrupted (to do, will resume from a checkpoint): ablation 1" in lines


@pytest.mark.parametrize("make", [False, True], ids=["missing", "empty"])
def test_nothing_run_yet_is_one_line(tmp_path, config_files, capsys, make):
    results = tmp_path / "results" / "digits"
    if make:
        results.mkdir(parents=True)
    assert main(["status", str(results), "--configfile", *map(str, config_files)]) == 0
    captured = capsys.readouterr()
    what = "nothing done or running yet" if make else "no such folder"
    assert captured.out.splitlines() == [
        f"{results}: {what}; 10 runs to do (teacher 1, precompute 1, ablation 4, compression 1, kd_grid 1, overlay_p 3)"
    ]
    assert captured.err == ""


def test_default_folder_comes_from_the_config_and_a_missing_config_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["status"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: no config: neither config.yaml nor --configfile / the profile's configfile"
    )
    minimal = {"dataset": {"name": "digits"}, "teacher": {}, "precompute": {}, "students": {}, "runtime": {}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({**minimal, **OVERRIDES}))
    assert main(["status", "--jobs", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --jobs: expected 1 or more, got 0"
    assert main(["status"]) == 0
    assert capsys.readouterr().out.startswith("results/digits: no such folder; ")


def test_the_precompute_row_counts_every_file_a_student_reads(tmp_path, config_files):
    """The controls read their own precompute files (shuffled rows, the reference code's
    defect, random maps): the demo makes 3 precompute jobs, and the row counts 3."""
    controls = tmp_path / "controls.yaml"
    controls.write_text(yaml.safe_dump({"controls": {"methods": ["reference_defect", "IG@random", "shuffled_IG"]}}))
    config = load_config(*config_files, controls)
    results = tmp_path / "results" / "digits"
    (results / "precompute").mkdir(parents=True)
    (results / "precompute/ig.h5").write_bytes(b"h5")
    row = by_name(status(config, results, jobs=1))["precompute"]
    assert (row.runs, row.done, row.to_do) == (3, 1, 2)
