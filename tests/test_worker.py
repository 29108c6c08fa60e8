"""Warm workers (runtime.warm_workers, igkd.training.worker): a student trained in a worker
that has trained another before is bit for bit the student its own fresh process trains,
in the same files; a stopped job stops its worker; a bad input is one line."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from configs import STUDENT
from igkd.training.student_job import StudentJob
from igkd.training.worker import submit
from student_jobs import make_job, write_inputs

WAIT_S = 120  # a fresh Python importing torch on a busy 2-core machine


@pytest.fixture
def root():
    """A short folder for the workers' sockets (pytest's tmp_path is too long a path)."""
    with tempfile.TemporaryDirectory(prefix="w", dir="/tmp") as folder:
        yield folder


@pytest.fixture
def inputs(tiny_splits, tmp_path):
    return write_inputs(tmp_path / "inputs", tiny_splits)


def in_own_process(job: StudentJob) -> None:
    """The job as the script runs it without warm workers: a fresh Python."""
    code = "import json, sys\nfrom igkd.training.student_job import StudentJob, run_student_job\n"
    code += "run_student_job(StudentJob(**json.loads(sys.argv[1])))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    subprocess.run([sys.executable, "-c", code, json.dumps(job.__dict__)], check=True, env=env, timeout=WAIT_S)


def worker_of(job: StudentJob) -> tuple[int, int]:
    """(worker pid, its job number) from the job's log."""
    match = re.search(r"in warm worker (\d+) \(its job (\d+)\)", Path(job.log).read_text())
    assert match, Path(job.log).read_text()
    return int(match[1]), int(match[2])


def ended(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in state  # exited, not yet reaped (the worker is no child of ours)


def stop(pid: int) -> None:
    if not ended(pid):
        os.kill(pid, signal.SIGTERM)


def test_a_warm_worker_trains_bit_for_bit_what_the_jobs_own_process_trains(inputs, tmp_path, root):
    """Two students, one after the other in one worker (the second after the worker trained
    the first), against each in its own fresh process: the same model.pt, metrics.json and
    subsample.npz, byte for byte, and the same history up to its wall-clock column."""
    runs = [("Student", 0), ("AT", 1)]
    for method, run in runs:
        in_own_process(make_job(inputs, tmp_path / "own" / f"{method}{run}", method, run))
    warm = [make_job(inputs, tmp_path / "warm" / f"{method}{run}", method, run) for method, run in runs]
    try:
        assert [submit(job, root=root) for job in warm] == [0, 0]
    finally:
        stop(worker_of(warm[0])[0])
    assert worker_of(warm[1]) == (worker_of(warm[0])[0], 2)  # the second job: the same warm worker
    for method, run in runs:
        own, hot = tmp_path / "own" / f"{method}{run}", tmp_path / "warm" / f"{method}{run}"
        for name in ("model.pt", "metrics.json", "subsample.npz"):
            assert (own / name).read_bytes() == (hot / name).read_bytes(), f"{method} run {run}: {name}"
        own_rows = [line.split(",") for line in (own / "history.csv").read_text().splitlines()]
        hot_rows = [line.split(",") for line in (hot / "history.csv").read_text().splitlines()]
        seconds = own_rows[0].index("seconds")
        assert [r[:seconds] + r[seconds + 1 :] for r in own_rows] == [r[:seconds] + r[seconds + 1 :] for r in hot_rows]
        assert json.loads((hot / "runtime.json").read_text())["seconds"] > 0


def test_a_stopped_job_stops_its_worker_and_keeps_its_checkpoint(inputs, tmp_path, root):
    """Snakemake stops a job (here: SIGKILL to the job's process): its worker ends at once,
    the run's last checkpoint stays for the rerun to resume from, no outputs appear."""
    job = make_job(inputs, tmp_path / "run", "Student", 0, students={**STUDENT, "epochs": 200})
    code = "import json, sys\nfrom igkd.training.student_job import StudentJob\n"
    code += "from igkd.training.worker import submit\n"
    code += f"sys.exit(submit(StudentJob(**json.loads(sys.argv[1])), root={root!r}))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    client = subprocess.Popen([sys.executable, "-c", code, json.dumps(job.__dict__)], env=env)
    log = Path(job.log)
    deadline = time.monotonic() + WAIT_S
    while not (log.exists() and "after epoch 2" in log.read_text()):
        assert time.monotonic() < deadline and client.poll() is None, log.read_text() if log.exists() else "no log"
        time.sleep(0.1)
    pid = worker_of(job)[0]
    client.kill()
    client.wait()
    deadline = time.monotonic() + 30
    while not ended(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if not ended(pid):
        stop(pid)
        pytest.fail("the worker kept training after its job was stopped")
    folder = tmp_path / "run"
    assert (folder / "checkpoint.pt").exists() and not (folder / "metrics.json").exists()


def test_a_bad_input_in_a_worker_ends_the_job_with_one_line(inputs, tmp_path, root, capsys):
    (inputs / "data.h5").unlink()
    job = make_job(inputs, tmp_path / "run", "Student", 0)
    try:
        assert submit(job, root=root) == 1
    finally:
        stop(worker_of(job)[0])
    expected = f"error: {inputs / 'data.h5'}: dataset file not found (run the prepare_data rule)"
    assert capsys.readouterr().err.strip() == expected
    assert Path(job.log).read_text().strip().splitlines()[-1] == expected


@pytest.mark.e2e
def test_the_workflow_trains_its_students_in_warm_workers_as_in_their_own_processes(workdir):
    """The tiny workflow with runtime.warm_workers, through Snakemake's own `script:` runs:
    both students train in warm workers; rerun in their own processes (warm_workers off
    reruns nothing: it is no param), they are the same files."""
    from test_workflow import TINY, snakemake

    target = "results/digits/tables/ablation/runs.csv"
    config = {**TINY, "runtime": {**TINY["runtime"], "warm_workers": True}}
    (workdir / "warm.yaml").write_text(yaml.safe_dump(config))
    code, out = snakemake(workdir, target, "--configfile", "config.yaml", "warm.yaml")
    logs = sorted((workdir / "logs/digits/students").glob("*.log"))
    pids = {int(m) for log in logs for m in re.findall(r"in warm worker (\d+)", log.read_text())}
    try:
        assert code == 0, out
        assert len(logs) == 2 and all("in warm worker" in log.read_text() for log in logs)
        assert 1 <= len(pids) <= 2  # one per student running at once (--cores 2)
    finally:
        for pid in pids:
            stop(pid)
    folders = sorted((workdir / "results/digits/students").glob("*/mobilenetv2-drop13/f0.8/run0"))
    warm = {folder: (folder / "model.pt").read_bytes() for folder in folders}
    (workdir / "cold.yaml").write_text(yaml.safe_dump(TINY))
    code, out = snakemake(workdir, target, "--configfile", "config.yaml", "cold.yaml", "-n")
    assert code == 0 and "Nothing to be done" in out, out  # which process trains: no param
    for folder in folders:
        shutil.rmtree(folder)
    (workdir / target).unlink()  # else the missing students are intermediate files: nothing reruns
    code, out = snakemake(workdir, target, "--configfile", "config.yaml", "cold.yaml")
    assert code == 0, out
    assert not any("in warm worker" in log.read_text() for log in logs)
    assert {folder: (folder / "model.pt").read_bytes() for folder in folders} == warm
