"""A workflow job imports only what it uses (docs/performance.md "Start-up cost of a job").

Every job is a fresh Python process (Snakemake's `script:`), so what its script imports at
the top is paid once per job: 40 times per demo for the students. torchvision (its
`__init__` imports all of it, and torchvision.ops imports torch._dynamo) and scikit-learn
cost 4-5 s together; the jobs that need them import them where they are used.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "workflow" / "scripts"
# What Snakemake's script preamble imports before the script's own lines run.
PREAMBLE = ["from snakemake.logging import logger", "from snakemake.iocontainers import Snakemake"]
UNUSED = ("torchvision", "torch._dynamo", "sklearn")
# Jobs that read with torchvision at run time anyway (once per workflow each).
USES_TORCHVISION = {
    "download_cifar10": "torchvision's CIFAR-10 download and md5 checks",
    "evaluate_external": "torchvision's class-folder listing (igkd.data.imagefolder)",
}

# The jobs that run many times per workflow; the other scripts' checks are marked slow
# (one fresh interpreter each, 1-3 s).
FREQUENT = ("distill_student", "train_sweep", "precompute_attributions", "train_teacher", "time_models")


def top_level_imports(script: Path) -> list[str]:
    """The import statements a script runs before its first line of work."""
    tree = ast.parse(script.read_text(), filename=str(script))
    return [ast.unparse(node) for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]


def modules_after(lines: list[str]) -> set[str]:
    """sys.modules of a fresh interpreter after running `lines` (with this checkout's src)."""
    code = "\n".join([*lines, "import json, sys", "print(json.dumps(sorted(sys.modules)))"])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def loaded(modules: set[str], packages) -> list[str]:
    return [p for p in packages if p in modules or any(m.startswith(p + ".") for m in modules)]


@pytest.mark.parametrize(
    "script",
    [
        pytest.param(p.stem, marks=() if p.stem in FREQUENT else pytest.mark.slow)
        for p in sorted(SCRIPTS.glob("*.py"))
        if p.stem not in USES_TORCHVISION
    ],
)
def test_a_job_starts_without_torchvision_dynamo_or_scikit_learn(script):
    modules = modules_after(PREAMBLE + top_level_imports(SCRIPTS / f"{script}.py"))
    assert loaded(modules, UNUSED) == []


def test_a_student_job_hands_its_run_over_without_importing_torch():
    """With warm workers the job's own process only passes its run on: no torch at all."""
    modules = modules_after(PREAMBLE + top_level_imports(SCRIPTS / "distill_student.py"))
    assert loaded(modules, ("torch", "h5py", "pandas")) == []


def test_a_student_job_runs_without_torchvision_scikit_learn_or_scipy(tiny_splits, tmp_path):
    """The whole job in its own process, not only its imports: a full-set AT student,
    trained for an epoch by the function the script calls, loads none of them.
    (torch._dynamo it does load: torch.optim's step imports it on the first call.)"""
    from student_jobs import make_job, write_inputs

    job = make_job(write_inputs(tmp_path, tiny_splits), tmp_path / "run", "AT", 0, warm=False)
    train = [
        "import json",
        "from igkd.training.student_job import StudentJob, run_student_job",
        f"run_student_job(StudentJob(**json.loads({json.dumps(job.__dict__)!r})))",
    ]
    modules = modules_after(PREAMBLE + top_level_imports(SCRIPTS / "distill_student.py") + train)
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["method"] == "AT"
    assert loaded(modules, ("torchvision", "sklearn", "scipy", "matplotlib", "captum")) == []
