"""A whole workflow killed with SIGKILL (a lost node, kill -9 of Snakemake itself): the
rerun is refused until `snakemake --unlock`, then the same command resumes the student
from its checkpoint (docs/reliability.md)."""

import copy
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

from test_workflow import TINY

TARGET = "results/digits/students/Student/mobilenetv2-drop13/f0.8/run0/metrics.json"
EPOCHS = 12
CFG = copy.deepcopy(TINY)
CFG["experiments"]["ablation"].update({"methods": ["Student"], "runs": 1})
CFG["students"].update({"epochs": EPOCHS, "eval_every": EPOCHS})
KILL_WAIT_S = 300


def command(workdir, *extra):
    return [
        sys.executable,
        "-m",
        "snakemake",
        TARGET,
        "--cores",
        "1",
        "--directory",
        str(workdir),
        *extra,
        "--configfile",
        "config.yaml",
        "tiny.yaml",
    ]


@pytest.mark.e2e
def test_killed_workflow_needs_unlock_then_the_same_command_resumes(workdir):
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(CFG))
    checkpoint = workdir / "results/digits/students/Student/mobilenetv2-drop13/f0.8/run0/checkpoint.pt"
    run = command(workdir, "--rerun-incomplete")
    with open(workdir / "first.out", "w") as out:  # its own process group: kill Snakemake and its jobs
        first = subprocess.Popen(run, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + KILL_WAIT_S
    while not checkpoint.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert first.poll() is None, (workdir / "first.out").read_text()[-3000:]
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert checkpoint.exists() and not (workdir / TARGET).exists()

    locked = subprocess.run(run, cwd=workdir, capture_output=True, text=True, timeout=KILL_WAIT_S)
    assert locked.returncode != 0
    assert "Directory cannot be locked" in locked.stdout + locked.stderr

    unlock = subprocess.run(command(workdir, "--unlock"), cwd=workdir, capture_output=True, text=True, timeout=120)
    assert unlock.returncode == 0, unlock.stdout + unlock.stderr

    rerun = subprocess.run(run, cwd=workdir, capture_output=True, text=True, timeout=KILL_WAIT_S)
    assert rerun.returncode == 0, (rerun.stdout + rerun.stderr)[-3000:]
    log = (workdir / "logs/digits/students/Student_mobilenetv2-drop13_f0.8_run0.log").read_text()
    assert "resumed from" in log and "after epoch" in log, log
    history = pd.read_csv(workdir / TARGET.replace("metrics.json", "history.csv"))
    assert list(history["epoch"]) == list(range(1, EPOCHS + 1))  # earlier epochs kept, none trained twice
    assert not checkpoint.exists()
