"""Shape rules for src/igkd that review keeps asking for, checked from the source with ast:
no function takes more than MAX_PARAMETERS parameters (group them in a dataclass), and
every module sits in its stage subpackage or is one of the few shared top-level modules."""

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src"
PACKAGE = SRC / "igkd"
MAX_PARAMETERS = 8
STAGES = {"data", "training", "attribution", "analysis", "plots", "plan", "architectures"}
TOP_LEVEL = {
    "__init__",
    "io",
    "config",
    "folders",
    "provenance",
    "runtime",
    "devices",
    "cli",
    "models",
    "controls",
    "experiments",
    "identity",
    "reruns",
    "status",
    "registry",
    "register",
    "plugins",
    "migrate",
}
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def parameter_count(function: ast.FunctionDef | ast.AsyncFunctionDef, is_method: bool) -> int:
    """Parameters of a def: positional, keyword-only, and *args / **kwargs as one each;
    a method's leading self or cls is not counted."""
    args = function.args
    positional = [*args.posonlyargs, *args.args]
    if is_method and positional and positional[0].arg in ("self", "cls"):
        positional = positional[1:]
    return len(positional) + len(args.kwonlyargs) + (args.vararg is not None) + (args.kwarg is not None)


def functions(tree: ast.Module):
    """(def node, whether it is a method) for every def in a module, nested ones too."""
    methods = {id(node) for cls in ast.walk(tree) if isinstance(cls, ast.ClassDef) for node in cls.body}
    for node in ast.walk(tree):
        if isinstance(node, FUNCTIONS):
            yield node, id(node) in methods


def too_many_parameters(path: Path, root: Path = REPO) -> list[str]:
    """`path:line name (N parameters)` (path relative to root) for each def over MAX_PARAMETERS."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    where = path.relative_to(root)
    found = []
    for node, is_method in functions(tree):
        count = parameter_count(node, is_method)
        if count > MAX_PARAMETERS:
            found.append(f"{where}:{node.lineno} {node.name} ({count} parameters)")
    return found


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_function_has_more_than_max_parameters():
    offenders = [line for path in modules() for line in too_many_parameters(path)]
    if offenders:
        pytest.fail(f"more than {MAX_PARAMETERS} parameters:\n" + "\n".join(offenders), pytrace=False)


def test_parameter_count_rules():
    """The counting itself: self/cls of methods free, *args and **kwargs one each."""
    source = (
        "def plain(a, b, /, c, *, d): pass\n"
        "def variadic(a, *args, b, **kwargs): pass\n"
        "def self(self, a): pass\n"  # not a method: self counts
        "class C:\n"
        "    def method(self, a, b): pass\n"
        "    @classmethod\n"
        "    def build(cls, a): pass\n"
        "    @staticmethod\n"
        "    def helper(a, b): pass\n"
    )
    tree = ast.parse(source)
    counts = {node.name: parameter_count(node, is_method) for node, is_method in functions(tree)}
    assert counts == {"plain": 4, "variadic": 4, "self": 2, "method": 2, "build": 1, "helper": 2}


def test_offenders_are_reported_with_path_line_and_count(tmp_path):
    path = tmp_path / "wide.py"
    path.write_text(
        "\n\ndef wide(a, b, c, d, e, f, g, h, *rest):\n    pass\n\n\ndef narrow(a, b, c, d, e, f, g, h):\n    pass\n"
    )
    assert too_many_parameters(path, tmp_path) == ["wide.py:3 wide (9 parameters)"]


def test_every_module_sits_in_a_stage_subpackage_or_is_a_known_top_level_module():
    misplaced = []
    for path in modules():
        parts = path.relative_to(PACKAGE).parts
        placed = parts[0] in STAGES if len(parts) > 1 else path.stem in TOP_LEVEL
        if not placed:
            misplaced.append(str(path.relative_to(REPO)))
    if misplaced:
        pytest.fail(
            f"modules outside {sorted(STAGES)} and not top-level {sorted(TOP_LEVEL)}:\n" + "\n".join(misplaced),
            pytrace=False,
        )
