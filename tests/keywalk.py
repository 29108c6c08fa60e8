"""Walk every leaf key of the config schema on a finished tiny workflow: change the key,
dry-run, and compare the rules Snakemake lists with the key's declaration (igkd.reruns).

Used by tests/test_reruns.py (pytest -m keywalk, run by .ci/run) and by hand:
`python tests/keywalk.py --record` prints what each key reruns today, to write or review
the schema's `x-reruns` declarations.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests"))

from igkd.config import load_schema, validate_config  # noqa: E402
from igkd.reruns import TARGET_RULES, Declaration, declarations, lookup, resolve  # noqa: E402
from test_workflow import TINY  # noqa: E402 - the tiny stages the walk shares

WORKERS = 2  # dry runs at once (each is one Python process, mostly single-threaded)

# Every stage and experiment of config.yaml at the smallest size (its methods, controls and
# figures, fewer students, runs and epochs on 8x8 digits), so every key has something to act
# on and a declaration reads as it does for the paper's protocol; plus converged IG (its
# keys and figure) and the external stand-in.
WALK = {
    **{section: TINY[section] for section in ("dataset", "teacher", "runtime", "timing", "sweeps")},
    "precompute": {
        "chunk": 512,
        "batch_size": 64,
        "ig": {"steps": 3, "method": "trapezoid", "tolerance": 0.5, "max_steps": 5, "internal_batch_size": 64},
    },
    "experiments": {  # config.yaml's methods, fractions and grid
        "ablation": {"students": ["mobilenetv2-drop13"], "runs": 2},
        "montecarlo": {"students": ["mobilenetv2-drop13"], "runs": 2},
        "compression": {"students": ["mobilenetv2-drop11", "mobilenetv2-drop13"]},
    },
    "students": {"epochs": 1, "crop_padding": 1, "eval_every": 1, "flip": False},
    "controls": {"runs": 2},  # config.yaml's controls, paired with the ablation
    "figures": {
        "examples": 2,
    },
    "external_eval": {
        "root": "results/digits/external/standin",
        "name": "standin",
        "description": "digits test set rotated 15 degrees",
        "class_map": None,
        "standin_rotation": 15,
    },
}


WALK_PLUGIN = str(REPO / "tests" / "walk_plugin.py")

# Keys the walk changes to a value it spells out (no generic step from the type exists):
# {dotted key: value} pairs, several where keys only change together. None: the key cannot
# change on the walk's config; its declaration must then not apply here (x-when).
CHANGES = {
    "dataset.tag": {"dataset.tag": "walk_tag"},
    "dataset.cifar10.path": {"dataset.cifar10.path": "elsewhere/cifar-10-python.tar.gz"},
    "dataset.cifar10.data_dir": {"dataset.cifar10.data_dir": "resources/elsewhere"},
    "dataset.imagefolder.root": {"dataset.imagefolder.root": "elsewhere"},
    "teacher.source": {"teacher.source": "import", "teacher.weights": "walk_teacher.pt"},
    "teacher.weights": {"teacher.weights": "walk_teacher.pt"},
    "teacher.normalize": {"teacher.normalize": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}},
    "students.normalize": {"students.normalize": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}},
    "precompute.attributions": {"precompute.attributions": ["ig", "saliency"]},
    "precompute.ig.method": {"precompute.ig.method": "gausslegendre", "precompute.ig.tolerance": None},
    "precompute.ig.tolerance": {"precompute.ig.tolerance": 0.25},
    "precompute.ig.internal_batch_size": {"precompute.ig.internal_batch_size": 32},
    "precompute.smoothgrad.internal_batch_size": {"precompute.smoothgrad.internal_batch_size": 8},
    "experiments.ablation.methods": {"experiments.ablation.methods": ["Student", "KD", "IG", "AT", "KD_IG", "KD_AT"]},
    "experiments.ablation.students": {"experiments.ablation.students": ["mobilenetv2-drop13", "mobilenetv2-drop11"]},
    "experiments.montecarlo.methods": {"experiments.montecarlo.methods": ["Student", "KD", "KD_IG", "KD_IG_AT", "IG"]},
    "experiments.montecarlo.students": {
        "experiments.montecarlo.students": ["mobilenetv2-drop13", "mobilenetv2-drop11"]
    },
    "experiments.compression.methods": {"experiments.compression.methods": ["Student", "KD", "KD_IG", "IG", "AT"]},
    "experiments.compression.students": {
        "experiments.compression.students": ["mobilenetv2-drop11", "mobilenetv2-drop13", "mobilenetv2-drop15"]
    },
    "experiments.grid.methods": {"experiments.grid.methods": ["Student", "KD"]},
    "experiments.grid.students": {"experiments.grid.students": ["mobilenetv2-drop15", "mobilenetv2-drop17"]},
    "students.ig.attribution": {"students.ig.attribution": "saliency", "precompute.attributions": ["ig", "saliency"]},
    "controls.methods": {"controls.methods": ["shuffled_IG", "shuffled_KD", "reference_defect"]},
    "controls.compare_with": {"controls.compare_with": ["KD_IG", "IG", "KD"]},
    "controls.student": {"controls.student": "mobilenetv2-drop11"},
    "runtime.device": {"runtime.device": "cuda"},
    "sweeps.student": {"sweeps.student": "mobilenetv2-drop11"},
    "precompute.gradcam.layer": {"precompute.gradcam.layer": "features.12"},
    # plugins: tests/walk_plugin.py registers a loss term and an attribution nothing here uses
    "plugins": {"plugins": [WALK_PLUGIN]},
    "precompute.plugin_settings": {"plugins": [WALK_PLUGIN], "precompute.plugin_settings": {"walk_map": {"a": 2}}},
    "students.losses": {"plugins": [WALK_PLUGIN], "students.losses": {"walk_term": 0.5}},
    "runtime.gpu_lock_dir": {"runtime.gpu_lock_dir": "/tmp/igkd-walk-locks"},
    "sweeps.kd.alphas": {"sweeps.kd.alphas": [0.01, 0.05]},
    "sweeps.kd.temperatures": {"sweeps.kd.temperatures": [2.5, 4]},
    "sweeps.overlay.ps": {"sweeps.overlay.ps": [0.1, 0.2]},
    "figures.ig_power.exponents": {"figures.ig_power.exponents": [1, 2]},
    "figures.mc_hist.student": {"figures.mc_hist.student": "mobilenetv2-drop13"},
    "figures.attention.methods": {"figures.attention.methods": ["Student", "KD"]},
    "figures.attention.student": {"figures.attention.student": "mobilenetv2-drop11"},
    "figures.attributions.methods": {"figures.attributions.methods": ["saliency", "ig"]},
    "figures.power.student": {"figures.power.student": "mobilenetv2-drop13"},
    "timing.batch_sizes": {"timing.batch_sizes": [1, 4]},
    "external_eval.root": {"external_eval.root": "results/digits/external/standin2"},
    "external_eval.name": {"external_eval.name": "standin2"},
    "external_eval.description": {"external_eval.description": "rotated digits"},
    "external_eval.class_map": None,  # with a stand-in (standin_rotation set) it must stay null
    "external_eval.standin_rotation": {"external_eval.standin_rotation": 10},
}


class NoWalkValue(ValueError):
    """The key needs an `x-walk` value in the schema: no safe generic change exists."""


def walk_change(decl: Declaration, config: dict, root: dict) -> dict:
    """{dotted key: new value} that changes `decl.key` on the walk's config and stays valid:
    CHANGES, else a generic step from the key's type; None where it cannot change here."""
    if decl.key in CHANGES:
        return CHANGES[decl.key]
    current = lookup(config, decl.key)
    node = resolve(decl.node, root)
    if "enum" in node:
        return {decl.key: next(v for v in node["enum"] if v != current)}
    kind = node.get("type")
    if kind == "boolean":
        return {decl.key: not current}
    if kind == "integer" and isinstance(current, int):
        up = current + 1
        return {decl.key: up if up <= node.get("maximum", math.inf) else current - 1}
    if kind == "number" and isinstance(current, int | float):
        new = current * 1.5 if current else 0.5
        top = node.get("maximum", node.get("exclusiveMaximum", math.inf))
        return {decl.key: new if new < top else current * 0.75}  # at the top: step down
    raise NoWalkValue(f"{decl.key}: no generic change for {node.get('type')!r} = {current!r}; add x-walk to the schema")


def nested(changes: dict) -> dict:
    out: dict = {}
    for dotted, value in changes.items():
        node = out
        *parents, last = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def prepare(folder: Path) -> Path:
    """A copy of the workflow in `folder` with walk.yaml."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(REPO / name, folder / name)
    for sub in ("workflow", "envs"):
        shutil.copytree(REPO / sub, folder / sub, dirs_exist_ok=True)
    (folder / "walk.yaml").write_text(yaml.safe_dump(WALK))
    return folder


def snakemake(folder: Path, *args: str, timeout: int = 1800) -> tuple[int, str]:
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--directory", str(folder), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=folder, timeout=timeout)
    return done.returncode, done.stdout + done.stderr


def job_counts(output: str) -> dict[str, int]:
    table = output.split("Job stats:")[-1]
    return {name: int(n) for name, n in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M) if name != "total"}


def finish(folder: Path) -> str:
    """Run the walk config to the end (the state every key is changed from), and leave a
    copy of its teacher as the weights file teacher.source: import changes to."""
    code, out = snakemake(folder, "--configfile", "config.yaml", "walk.yaml")
    if code != 0:
        raise RuntimeError(out[-5000:])
    shutil.copy(folder / "results/digits/teacher/model.pt", folder / "walk_teacher.pt")
    code, out = snakemake(folder, "-n", "--configfile", "config.yaml", "walk.yaml")
    if code != 0 or "Nothing to be done" not in out:
        raise RuntimeError("the finished walk workflow still has jobs:\n" + out[-3000:])
    return out


def merge(a: dict, b: dict) -> dict:
    """b over a, as Snakemake merges --configfile files."""
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def base_config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def merged_config() -> dict:
    return validate_config(merge(base_config(), WALK))


def rerun_rules(folder: Path, decl: Declaration, config: dict, root: dict) -> set[str] | str:
    """The rules (targets left out) a dry run lists after changing the key; a str on failure."""
    change = walk_change(decl, config, root)
    if change is None:
        return set()  # cannot change on this config: nothing to rerun (the declaration must agree)
    name = "change_" + re.sub(r"\W", "_", decl.key) + ".yaml"
    (folder / name).write_text(yaml.safe_dump(nested(change)))
    code, out = snakemake(
        folder, "-n", "--nolock", "--quiet", "rules", "--configfile", "config.yaml", "walk.yaml", name
    )
    if code != 0:
        return f"dry run failed with {change}:\n{out[-2000:]}"
    return set(job_counts(out)) - TARGET_RULES


def walk(folder: Path) -> dict[str, tuple[set[str] | str, set[str]]]:
    """{key: (rules listed, rules declared)} for every leaf key."""
    found, groups = declarations()
    root = load_schema()
    config = merged_config()

    def one(decl: Declaration):
        declared = decl.rules(groups) if decl.applies(config) else set()
        try:
            listed = rerun_rules(folder, decl, config, root)
        except NoWalkValue as err:
            listed = str(err)
        return decl.key, (listed, declared)

    with ThreadPoolExecutor(WORKERS) as pool:
        return dict(pool.map(one, found))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, help="a finished walk folder to reuse (made if missing)")
    parser.add_argument("--record", action="store_true", help="print what each key reruns, as JSON")
    args = parser.parse_args()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="igkd-walk-"))
    prepare(folder)
    finish(folder)
    results = walk(folder)
    if args.record:
        print(json.dumps({k: sorted(v[0]) if isinstance(v[0], set) else v[0] for k, v in results.items()}, indent=1))
    wrong = {k: v for k, v in results.items() if v[0] != v[1]}
    for key, (listed, declared) in wrong.items():
        print(f"{key}: listed {sorted(listed) if isinstance(listed, set) else listed}; declared {sorted(declared)}")
    return 1 if wrong else 0


if __name__ == "__main__":
    raise SystemExit(main())
