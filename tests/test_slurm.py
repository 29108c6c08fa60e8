"""profiles/slurm-local on a real single-node SLURM cluster (opt-in: pytest -m slurm; needs root).

tests/slurm/start-local-slurm.sh installs (Debian packages, if missing) and starts munge,
slurmctld, slurmd and, for `sacct`, MariaDB + slurmdbd. A small DAG (digits 8x8, 2 methods x
1 student x 2 runs, student groups of 2) runs through SLURM while the same DAG runs locally. The
running student group is cancelled after the first checkpoint, as a time limit would end it,
so Snakemake resubmits it and training resumes. Every number must equal the uninterrupted local
run. The students of a group run one after another inside their SLURM job (see
test_slurm_profile_runs_the_dag_like_a_local_run). The daemons this test started are stopped by
PID afterwards.
"""

import copy
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from test_workflow import TINY

pytestmark = pytest.mark.slurm

SLURM_SCRIPTS = Path(__file__).resolve().parent / "slurm"
PIDDIR = Path(os.environ.get("PIDDIR") or Path(os.environ.get("TMPDIR", "/tmp")) / "local-slurm/pids")
SMALL = copy.deepcopy(TINY)  # 4 students; 6 epochs, so one can be cut after its first checkpoint
SMALL["experiments"]["ablation"]["runs"] = 2
SMALL["students"].update({"epochs": 6, "eval_every": 6})
GROUP = 2  # group-components of profiles/slurm-local
RESULTS = "results/digits"
STUDENTS = [(method, run) for method in SMALL["experiments"]["ablation"]["methods"] for run in (0, 1)]
STUDENT_DIRS = [f"{RESULTS}/students/{method}/mobilenetv2-drop13/f0.8/run{run}" for method, run in STUDENTS]
# one path through every stage (the default target builds every figure of the paper)
TARGETS = [
    f"{RESULTS}/{path}"
    for path in ("tables/ablation/runs.csv", "stats/ablation/summary.csv", "figures/compression.pdf")
]
SUBMITTED = re.compile(r"submitted with SLURM jobid (\d+) \(log: (\S+)\)")
MEMBER = re.compile(
    r"distill_student:method=(\w+),student=([\w-]+),fraction=([\d.]+),run=(\d+)"
)  # a group's --target-jobs
TIMEOUT_S = 1200


@pytest.fixture(scope="module")
def slurm_cluster():
    """Start the local cluster; afterwards stop exactly the daemons this fixture started."""
    if os.geteuid() != 0:
        pytest.fail("the SLURM test needs root: it installs Debian packages and starts munge/slurm daemons")
    began = time.time()
    out = subprocess.run(
        ["bash", str(SLURM_SCRIPTS / "start-local-slurm.sh")], capture_output=True, text=True, timeout=600
    )
    print(out.stdout, out.stderr, f"cluster up in {time.time() - began:.0f} s", sep="\n")
    started = re.findall(r"\] (\w+) started \(pid (\d+)\)", out.stdout)  # not the ones already running
    try:
        assert out.returncode == 0, out.stdout + out.stderr
        yield {"accounting": (PIDDIR / "accounting.mode").read_text().strip() == "1"}
    finally:
        if started:
            stop = subprocess.run(
                ["bash", str(SLURM_SCRIPTS / "stop-local-slurm.sh"), *(n for n, _ in started)],
                capture_output=True,
                text=True,
            )
            print(stop.stdout, stop.stderr)
        for name, pid in started:
            assert not Path(f"/proc/{pid}").exists(), f"{name} (pid {pid}) still running"


def make_workdir(repo: Path, path: Path) -> Path:
    path.mkdir()
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(repo / name, path / name)
    for folder in ("workflow", "envs", "profiles"):
        shutil.copytree(repo / folder, path / folder)
    (path / "small.yaml").write_text(yaml.safe_dump(SMALL))
    return path


def snakemake(workdir: Path, *args) -> subprocess.Popen:
    """Start snakemake on TARGETS in `workdir`; output goes to workdir/snakemake.out."""
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        *TARGETS,
        "--directory",
        str(workdir),
        "--configfile",
        "config.yaml",
        "small.yaml",
        *args,
    ]
    with open(workdir / "snakemake.out", "w") as out:
        return subprocess.Popen(cmd, cwd=workdir, stdout=out, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, deadline: float) -> int:
    try:
        return proc.wait(timeout=max(deadline - time.time(), 1))
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def cancel_at_first_checkpoint(proc: subprocess.Popen, workdir: Path, deadline: float) -> list[str]:
    """Cancel the running student group(s) as soon as a student has written checkpoint.pt."""
    students = workdir / RESULTS / "students"
    while proc.poll() is None and time.time() < deadline:
        if list(students.glob("*/*/f*/run*/checkpoint.pt")):
            log = (workdir / "snakemake.out").read_text()
            groups = [jid for jid, path in SUBMITTED.findall(log) if "/group_students" in path]
            running = subprocess.run(
                ["squeue", "-h", "-t", "RUNNING", "-o", "%i", "-j", ",".join(groups)], capture_output=True, text=True
            ).stdout.split()
            if running:
                subprocess.run(["scancel", *running], check=True)
                return running
        time.sleep(0.05)
    return []


def planned_jobs(out: str) -> dict[str, int]:
    """Snakemake's 'Job stats' table at the start of a run: rule -> job count."""
    table = out.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    return {name: int(n) for name, n in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M) if name != "total"}


def slurm_states(job_ids: list[str], accounting: bool) -> dict[str, str]:
    """Final state of each job as slurmctld recorded it: sacct, or the slurmctld log without accounting."""
    if accounting:
        out = subprocess.run(
            ["sacct", "-X", "-n", "-P", "-o", "JobID,State", "-j", ",".join(job_ids)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        rows = (line.split("|") for line in out.splitlines() if line)
        return {jid: state.split()[0] for jid, state in rows}  # "CANCELLED by 0" -> CANCELLED
    text = Path("/var/log/slurm/slurmctld.log").read_text()
    states = {}
    for jid in job_ids:
        if f"_job_complete: JobId={jid} WEXITSTATUS 0" in text:
            states[jid] = "COMPLETED"
        elif f"REQUEST_KILL_JOB JobId={jid} " in text:
            states[jid] = "CANCELLED"
    return states


def member_spans(workdir: Path, group_log: str) -> dict[str, tuple[float, float]]:
    """Wall-clock [started, ended] (runtime.json, epoch seconds) of each student of one group job,
    the members read from the --target-jobs of the job's Snakemake command in its SLURM log."""
    members = sorted(set(MEMBER.findall(Path(group_log).read_text())))
    spans = {}
    for method, student, fraction, run in members:
        folder = workdir / RESULTS / f"students/{method}/{student}/f{fraction}/run{run}"
        runtime = json.loads((folder / "runtime.json").read_text())
        spans[f"{method}_{student}_f{fraction}_run{run}"] = (runtime["started"], runtime["ended"])
    return spans


def group_steps(job_ids: list[str]) -> str:
    """sacct's record of the group jobs and their srun steps (one step per student when they run in turn)."""
    return subprocess.run(
        ["sacct", "-n", "-P", "-o", "JobID,AllocCPUS,Start,End,State", "-j", ",".join(job_ids)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def without_timings(frame: pd.DataFrame) -> pd.DataFrame:
    """Wall-clock columns differ between any two runs; nothing else may."""
    return frame.drop(columns=[c for c in frame.columns if "seconds" in c])


def state_dict(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_slurm_profile_runs_the_dag_like_a_local_run(repo, tmp_path, slurm_cluster):
    slurm_dir, local_dir = make_workdir(repo, tmp_path / "slurm"), make_workdir(repo, tmp_path / "local")
    began = time.time()
    deadline = began + TIMEOUT_S
    # the local reference runs on one core while the SLURM jobs run (their wall time is mostly polling)
    local = snakemake(local_dir, "--cores", "1")
    slurm = snakemake(slurm_dir, "--profile", "profiles/slurm-local")
    cancelled = cancel_at_first_checkpoint(slurm, slurm_dir, deadline)
    code, local_code = finish(slurm, deadline), finish(local, deadline)
    print(f"SLURM and local runs took {time.time() - began:.0f} s; cancelled SLURM job(s) {cancelled}")
    out = (slurm_dir / "snakemake.out").read_text()
    assert code == 0, out[-5000:]
    assert local_code == 0, (local_dir / "snakemake.out").read_text()[-5000:]
    assert cancelled, "no student group was running when the first checkpoint appeared"

    # every job went through slurmctld: one per rule job, one per group of students, plus resubmissions
    planned = planned_jobs(out)
    for rule in re.findall(r"^localrule (\w+):", out, flags=re.M):  # run by Snakemake itself, if any
        planned[rule] -= 1
    planned = {rule: n for rule, n in planned.items() if n}
    submitted = SUBMITTED.findall(out)
    job_ids = [jid for jid, _ in submitted]
    groups = math.ceil(planned.pop("distill_student") / GROUP)
    assert sum("/group_students" in path for _, path in submitted) == groups + len(cancelled)
    assert len(job_ids) == sum(planned.values()) + groups + len(cancelled), out[-5000:]
    for rule in planned:
        assert (slurm_dir / f".snakemake/slurm_logs/rule_{rule}").is_dir(), rule
    states = slurm_states(job_ids, slurm_cluster["accounting"])
    assert states == {jid: "CANCELLED" if jid in cancelled else "COMPLETED" for jid in job_ids}

    # The students of a group run one after another, not side by side: the plugin (2.8.0) starts
    # the job's own Snakemake with `--jobs 1` and without --groups/--group-components, so it sees
    # independent jobs and runs one srun step at a time, although the job holds the CPUs of all.
    group_jobs = [(jid, log) for jid, log in submitted if "/group_students" in log and jid not in cancelled]
    for jid, log in group_jobs:
        spans = member_spans(slurm_dir, log)
        print(
            f"group job {jid}: "
            + ", ".join(
                f"{name} {s - began:.1f}-{e - began:.1f} s"
                for name, (s, e) in sorted(spans.items(), key=lambda item: item[1])
            )
        )
        assert len(spans) == GROUP, (jid, spans)
        ordered = sorted(spans.values())
        assert all(later[0] >= earlier[1] for earlier, later in zip(ordered, ordered[1:])), (
            f"students of SLURM job {jid} overlapped {spans}: groups now run side by side; update docs/slurm.md "
            "'Grouping' and the grouped runtimes in profiles/slurm"
        )
    if slurm_cluster["accounting"]:
        steps = group_steps([jid for jid, _ in group_jobs])
        print(steps)
        allocated = dict(line.split("|")[:2] for line in steps.splitlines() if line)
        assert all(allocated[jid] == str(GROUP) for jid, _ in group_jobs), steps  # 1 thread per student

    # the cancelled students resumed from their checkpoints, which are gone once the run is complete
    resumed = [
        (m, r)
        for m, r in STUDENTS
        if "resumed from" in (slurm_dir / f"logs/digits/students/{m}_mobilenetv2-drop13_f0.8_run{r}.log").read_text()
    ]
    print(f"resumed: {resumed}")
    assert resumed, "no cancelled student resumed from its checkpoint"
    for d in STUDENT_DIRS:
        assert not (slurm_dir / d / "checkpoint.pt").exists()

    # same numbers as the local run: tables, statistics, teacher and every student, threads included
    tables = ("runs.csv", "method_means.csv")
    stats = ("summary.csv", "comparisons.csv")
    for table in [f"tables/ablation/{t}" for t in tables] + [f"stats/ablation/{t}" for t in stats]:
        a, b = (without_timings(pd.read_csv(w / RESULTS / table)) for w in (slurm_dir, local_dir))
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=table)
    runs = pd.read_csv(slurm_dir / RESULTS / "tables/ablation/runs.csv")
    assert len(runs) == len(STUDENTS) and runs["test_acc"].nunique() > 1  # trained, not chance everywhere
    for d in [f"{RESULTS}/teacher", *STUDENT_DIRS]:
        a, b = (json.loads((w / d / "metrics.json").read_text()) for w in (slurm_dir, local_dir))
        assert a["environment"]["threads"] == b["environment"]["threads"] == 1, d
        assert a["test_acc"] == b["test_acc"], d
        ha, hb = (without_timings(pd.read_csv(w / d / "history.csv")) for w in (slurm_dir, local_dir))
        pd.testing.assert_frame_equal(ha, hb, check_exact=True, obj=f"{d}/history.csv")
        sa, sb = state_dict(slurm_dir / d / "model.pt"), state_dict(local_dir / d / "model.pt")
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa), d


CONTROLLER_TARGET = f"{RESULTS}/tables/ablation/runs.csv"  # data, teacher, precompute, 4 students, one table


def squeue_state(job_id: str) -> str:
    """The job's state as squeue shows it ('' once it has left the queue)."""
    out = subprocess.run(["squeue", "-h", "-o", "%T", "-j", job_id], capture_output=True, text=True)
    return out.stdout.strip()


def test_the_controller_runs_as_a_batch_job_and_requeues_itself_before_its_time_limit(repo, tmp_path, slurm_cluster):
    """profiles/slurm/controller.sbatch: Snakemake itself runs as a SLURM job and submits the
    others from there. At the first student checkpoint the test sends it the signal SLURM sends
    ten minutes before the time limit (USR1): Snakemake cancels its running jobs and exits, the
    job requeues itself, and its second start finishes the run, the cancelled student resuming."""
    workdir = make_workdir(repo, tmp_path / "controller")
    env = {
        **os.environ,
        "IGKD_PROFILE": "profiles/slurm-local",
        "IGKD_SNAKEMAKE": f"{sys.executable} -m snakemake",
    }
    # The controller holds 1 of the cluster's CPUs: one student per job (1 thread) fits beside it.
    submit = subprocess.run(
        ["sbatch", "--parsable", "--partition=main", "--time=30", "--mem=1000", "profiles/slurm/controller.sbatch"]
        + [CONTROLLER_TARGET, "--configfile", "config.yaml", "small.yaml", "--group-components", "students=1"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
    )
    assert submit.returncode == 0, submit.stderr
    job = submit.stdout.strip().split(";")[0]
    log = workdir / f"igkd-controller-{job}.log"
    deadline = time.time() + TIMEOUT_S
    students = workdir / RESULTS / "students"
    while time.time() < deadline and not list(students.glob("*/*/f*/run*/checkpoint.pt")):
        time.sleep(0.05)
    assert squeue_state(job) == "RUNNING", log.read_text() if log.exists() else "no controller log"
    subprocess.run(["scancel", "--batch", "--signal=USR1", job], check=True)  # as SLURM's --signal=B:USR1@600
    while time.time() < deadline and not ((workdir / CONTROLLER_TARGET).exists() and squeue_state(job) == ""):
        time.sleep(1)
    text = log.read_text()
    print(text[-3000:])
    assert (workdir / CONTROLLER_TARGET).exists(), text[-5000:]
    assert squeue_state(job) == "", text[-5000:]
    starts = re.findall(r"^igkd controller: SLURM job (\d+) \(restart (\d+)\)", text, flags=re.M)
    assert starts == [(job, "0"), (job, "1")], starts  # one requeue: the same job, started twice
    assert "time limit in 10 minutes: stopping Snakemake" in text and f"requeueing job {job}" in text
    assert text.rstrip().splitlines()[-1].startswith("igkd controller: Snakemake exited with status 0")
    assert re.search(r"^\d+ of \d+ steps \(100%\) done", text, flags=re.M), text[-3000:]
    # submitted from inside the controller's job, the cancelled student went on from its checkpoint
    assert SUBMITTED.search(text), text[-3000:]
    resumed = [
        m
        for m, r in STUDENTS
        if "resumed from" in (workdir / f"logs/digits/students/{m}_mobilenetv2-drop13_f0.8_run{r}.log").read_text()
    ]
    assert resumed, "no student resumed after the controller's requeue"
    assert not list(students.glob("*/*/f*/run*/checkpoint.pt"))
