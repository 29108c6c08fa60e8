"""Code fingerprints for Snakemake params.

Snakemake reruns a `script:` rule when its script changes, not when package code it
imports changes. Each rule carries the fingerprint of the package modules its stage
depends on, so editing e.g. `distill.py` reruns the students (and what follows) but not
the teacher. Kept free of heavy imports: the Snakefile imports it on every dry run.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent

# Modules (relative to src/igkd, without .py) whose code decides each stage's output.
STAGE_MODULES = {
    "data": ["io", "data/store", "data/digits", "data/cifar10", "data/imagefolder"],
    "teacher": ["io", "models", "augment", "train", "amp", "teacher"],
    "precompute": ["io", "models", "augment", "amp", "attribution", "completeness", "ig_memory", "precompute"],
    "student": ["io", "models", "augment", "train", "amp", "methods", "distill", "student", "precompute"],
    "collect": ["io", "collect", "stats"],
    "reference_defect": ["io", "models", "augment", "amp", "attribution", "completeness", "ig_memory", "precompute", "controls"],
    "controls": ["io", "methods", "collect", "stats", "control_stats"],
    "sweeps": ["io", "models", "augment", "train", "amp", "methods", "distill", "student", "precompute", "sweeps", "sweep_runner"],
    "sweep_table": ["io", "sweeps"],
    "timing": ["models", "timing"],
    "standin": ["io", "data/store", "data/standin"],
    "external": ["io", "models", "augment", "train", "amp", "data/store", "data/imagefolder", "evaluate"],
    "figures": ["io", "plots/__init__"],  # plus the figure's own module, see fingerprint()
}


def fingerprint(stage: str, *extra: str) -> str:
    """Short hash of the source of the modules a stage depends on (plus `extra` modules,
    e.g. one figure's own module, so editing one figure reruns only that figure)."""
    digest = hashlib.sha256()
    for name in [*STAGE_MODULES[stage], *extra]:
        path = PACKAGE / f"{name}.py"
        digest.update(name.encode())
        digest.update(path.read_bytes() if path.exists() else b"")
    return digest.hexdigest()[:12]
