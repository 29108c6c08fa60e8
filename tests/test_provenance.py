"""Code fingerprints (igkd.provenance): a rule's `code` param must change exactly when its
script or an igkd module the script imports (transitively) changes, so an edit reruns the
stages that use the edited code and no others. Fast: ast only, no Snakemake runs."""

import re
import shutil
from pathlib import Path

import pytest

from igkd.provenance import PACKAGE, MissingModule, fingerprint, stage_modules

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "workflow" / "scripts"
RULE_FILES = [REPO / "Snakefile", *sorted((REPO / "workflow" / "rules").glob("*.smk"))]
EDIT = b"\n# edited by tests/test_provenance.py\n"
NO_CACHE = shutil.ignore_patterns("__pycache__")


def module_name(path: Path, package_dir: Path) -> str:
    """Dotted name of a source file under package_dir (`igkd.training.loop`)."""
    parts = path.relative_to(package_dir).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(("igkd", *parts))


def fingerprints(scripts: list[Path], package_dir: Path) -> dict[str, str]:
    return {script.stem: fingerprint(script, package_dir) for script in scripts}


@pytest.fixture
def copied(tmp_path):
    """A private copy of src/igkd and workflow/scripts, so edits touch nobody's files."""
    package = tmp_path / "igkd"
    shutil.copytree(PACKAGE, package, ignore=NO_CACHE)
    shutil.copytree(SCRIPTS, tmp_path / "scripts", ignore=NO_CACHE)
    return package, sorted((tmp_path / "scripts").glob("*.py"))


def write_package(root: Path, modules: dict[str, str]) -> Path:
    """A throwaway `igkd` package under root: {relative path: source}."""
    package = root / "igkd"
    for relative, source in {"__init__.py": "", **modules}.items():
        (package / relative).parent.mkdir(parents=True, exist_ok=True)
        (package / relative).write_text(source)
    return package


# ---- an edit reruns exactly the stages that import the edited module


def test_editing_a_module_changes_exactly_the_scripts_that_import_it(copied):
    package, scripts = copied
    stages = {script.stem: stage_modules(script, package) for script in scripts}
    before = fingerprints(scripts, package)
    modules = sorted(package.rglob("*.py"))
    assert len(modules) > 20 and len(scripts) > 20  # the copy holds the real tree
    for module in modules:
        name = module_name(module, package)
        source = module.read_bytes()
        module.write_bytes(source + EDIT)
        try:
            after = fingerprints(scripts, package)
        finally:
            module.write_bytes(source)
        changed = {stem for stem in before if after[stem] != before[stem]}
        assert changed == {stem for stem, names in stages.items() if name in names}, f"after editing {name}"
    assert fingerprints(scripts, package) == before  # restoring every module restores every fingerprint


def test_editing_a_script_changes_only_its_own_fingerprint(copied):
    package, scripts = copied
    before = fingerprints(scripts, package)
    edited = scripts[0]
    edited.write_bytes(edited.read_bytes() + EDIT)
    after = fingerprints(scripts, package)
    assert {stem for stem in before if after[stem] != before[stem]} == {edited.stem}


def test_fingerprint_does_not_depend_on_where_the_checkout_lives(copied):
    """Moving or re-cloning the repository must not rerun the whole workflow."""
    package, scripts = copied
    assert fingerprints(scripts, package) == fingerprints(sorted(SCRIPTS.glob("*.py")), PACKAGE)


# ---- what each stage depends on


def stage(script: str) -> tuple[str, ...]:
    return stage_modules(SCRIPTS / f"{script}.py")


def test_every_script_has_a_fingerprint():
    """What `snakemake` computes for every rule when it builds the DAG."""
    for script in sorted(SCRIPTS.glob("*.py")):
        assert re.fullmatch(r"[0-9a-f]{12}", fingerprint(script)), script.name


def test_stage_modules_follow_the_imports():
    assert "igkd.data.prepare" in stage("prepare_data")
    assert not any(name.startswith("igkd.training") for name in stage("prepare_data"))
    student = stage("distill_student")
    assert {"igkd.training.distiller", "igkd.training.student", "igkd.training.loop"} <= set(student)
    assert {"igkd", "igkd.training"} <= set(student)  # packages above a module: their __init__ runs
    teacher = stage("train_teacher")
    assert {"igkd.training.teacher", "igkd.training.loop"} <= set(teacher)
    assert not {"igkd.training.distiller", "igkd.training.student"} & set(teacher)
    assert not any(name.startswith("igkd.attribution") for name in teacher)


FIGURE_SCRIPTS = sorted(path.stem for path in SCRIPTS.glob("fig_*.py"))
# Figures drawn from tables and JSON: editing training or attribution code must not redraw them.
TABLE_FIGURES = [
    "fig_compression",
    "fig_controls",
    "fig_imagenet",
    "fig_kd_grid",
    "fig_latency",
    "fig_mc_hist",
    "fig_overlay_p",
]


@pytest.mark.parametrize("script", FIGURE_SCRIPTS)
def test_a_figure_script_depends_on_its_plots_module(script):
    assert f"igkd.plots.{script.removeprefix('fig_')}" in stage(script)


@pytest.mark.parametrize("script", TABLE_FIGURES)
def test_a_table_figure_does_not_depend_on_training_code(script):
    heavy = [name for name in stage(script) if name.startswith(("igkd.training", "igkd.attribution", "igkd.models"))]
    assert heavy == []


def test_no_igkd_import_means_no_stage_modules(tmp_path):
    script = tmp_path / "plain.py"
    script.write_text("import json\nimport igkdx\nfrom igkd_other import thing\n")
    assert stage_modules(script) == ()


# ---- a misspelt import fails when the DAG is built, naming the file


@pytest.mark.parametrize(
    ("line", "missing"),
    [
        ("from igkd.trainng import fit", "igkd.trainng"),
        ("import igkd.nothere", "igkd.nothere"),
        ("from igkd.data import nosuchname", "nosuchname"),
        ("def later():\n    from igkd.training.lop import fit", "igkd.training.lop"),  # inside a function
    ],
)
def test_a_misspelt_import_raises_missing_module_naming_the_script(tmp_path, line, missing):
    script = tmp_path / "misspelt.py"
    script.write_text(f'"""A script."""\n\n{line}\n')
    with pytest.raises(MissingModule, match=re.escape(str(script))) as raised:
        fingerprint(script)
    assert missing in str(raised.value)


def test_a_misspelt_import_in_a_module_names_the_module(tmp_path):
    package = write_package(tmp_path, {"stage.py": "from igkd.trainng import fit\n\nrun = fit\n"})
    script = tmp_path / "script.py"
    script.write_text("from igkd.stage import run\n")
    with pytest.raises(MissingModule, match=re.escape(str(package / "stage.py"))):
        fingerprint(script, package)


def test_names_bound_by_unpacking_or_in_blocks_are_defined(tmp_path):
    """`from igkd.x import A` is valid when x binds A by tuple unpacking or inside an
    if/try block at module level, and `from igkd.x import *` is valid; neither may fail
    the DAG build."""
    consts = (
        "A, B = 1, 2\n"
        "try:\n    import tomllib\nexcept ImportError:\n    tomllib = None\n"
        "if A:\n\n    def g():\n        return 1\n"
    )
    package = write_package(tmp_path, {"consts.py": consts})
    for name in ("A", "B", "tomllib", "g", "*"):
        script = tmp_path / f"uses_{ord(name[0])}.py"
        script.write_text(f"from igkd.consts import {name}\n")
        assert stage_modules(script, package) == ("igkd", "igkd.consts"), name


def test_removing_an_imported_name_is_seen_on_the_next_call(tmp_path):
    """The parse cache must not hide that a module no longer defines what a script imports."""
    package = write_package(tmp_path, {"stage.py": "def run():\n    pass\n"})
    script = tmp_path / "script.py"
    script.write_text("from igkd.stage import run\n")
    assert stage_modules(script, package) == ("igkd", "igkd.stage")
    (package / "stage.py").write_text("def walk():\n    pass\n")
    with pytest.raises(MissingModule, match="run"):
        stage_modules(script, package)


# ---- every rule's code param names its own, existing script

RULE = re.compile(r"^[ \t]*(?:rule|checkpoint)\s+(\w+)\s*:", re.M)
CODE = re.compile(r"""code_fingerprint\(\s*["']([^"']+)["']\s*\)""")
SCRIPT = re.compile(r"""^\s*script:\s*["']([^"']+)["']""", re.M)


def rule_blocks() -> list[tuple[str, str]]:
    """(file:rule, text of the rule up to the next rule) for every rule of the workflow."""
    blocks = []
    for path in RULE_FILES:
        text = path.read_text()
        starts = list(RULE.finditer(text))
        bounds = [m.start() for m in starts] + [len(text)]
        blocks += [
            (f"{path.name}:{m.group(1)}", text[m.start() : end]) for m, end in zip(starts, bounds[1:], strict=True)
        ]
    return blocks


def test_every_rule_code_param_names_its_own_script():
    blocks = rule_blocks()
    assert len(blocks) > 20
    used = set()
    for rule, text in blocks:
        codes, scripts = CODE.findall(text), SCRIPT.findall(text)
        if not scripts:
            assert codes == [], f"{rule}: code_fingerprint but no script:"
            continue
        assert len(codes) == 1, f"{rule}: expected one code=code_fingerprint(...), found {codes}"
        assert scripts == [f"../scripts/{codes[0]}.py"], f"{rule}: code names {codes[0]}, script is {scripts}"
        assert (SCRIPTS / f"{codes[0]}.py").is_file(), f"{rule}: no workflow/scripts/{codes[0]}.py"
        used.add(codes[0])
    assert used == {path.stem for path in SCRIPTS.glob("*.py")}  # no script without a rule
