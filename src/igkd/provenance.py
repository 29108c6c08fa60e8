"""Code fingerprints for Snakemake params, derived from what each rule's script imports.

Snakemake reruns a `script:` rule when its script changes, not when package code it
imports changes. Each rule therefore carries, as a param, the hash of every `igkd` module
its script imports, directly or through other `igkd` modules (read from the source with
`ast`, so nothing is imported). Editing `training/distiller.py` reruns the students and
what follows, not the teacher; a module a script names but that does not exist is an
error here, at DAG-building time. Kept free of heavy imports: the Snakefile imports it
on every dry run.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
ROOT_PACKAGE = "igkd"


class MissingModule(LookupError):
    """A script or module imports an `igkd` module that has no source file."""


def module_path(name: str, package_dir: Path = PACKAGE) -> Path | None:
    """Source file of the dotted module `name` (`igkd.training.loop`), or None."""
    parts = name.split(".")[1:]
    base = package_dir.joinpath(*parts)
    for candidate in (base.with_suffix(".py") if parts else None, base / "__init__.py"):
        if candidate is not None and candidate.is_file():
            return candidate
    return None


def direct_imports(path: Path, package_dir: Path = PACKAGE) -> set[str]:
    """The `igkd` modules one file imports (anywhere in it, also inside functions).

    `from igkd.x import y` counts `igkd.x.y` when y is a module, else `igkd.x` (and y must
    then be defined there); every package above a module counts too (its `__init__` runs
    on import)."""
    found: set[str] = set()
    for module, names in _import_statements(path.read_bytes(), str(path)):
        for name in names:
            if module_path(name, package_dir) is not None:
                found.add(name)
            elif module is not None and name != module:
                _check_defined(path, module, name.rpartition(".")[2], package_dir)
            else:
                raise MissingModule(f"{path}: imports {name}, which has no source file under {package_dir}")
    parents = {".".join(name.split(".")[:k]) for name in found for k in range(1, name.count(".") + 1)}
    return found | parents


@functools.cache
def _import_statements(source: bytes, filename: str) -> tuple[tuple[str | None, tuple[str, ...]], ...]:
    """Each `igkd` import in a file: (the module of a `from` import or None, dotted names).

    Cached by content only: whether the names resolve depends on other files, so
    direct_imports checks that on every call."""
    statements = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if isinstance(node, ast.Import):
            module, names = None, [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            module = node.module
            names = [module] + [f"{module}.{alias.name}" for alias in node.names if alias.name != "*"]
        else:
            continue
        names = [name for name in names if name == ROOT_PACKAGE or name.startswith(ROOT_PACKAGE + ".")]
        if names:
            statements.append((module, tuple(names)))
    return tuple(statements)


def _check_defined(path: Path, module: str, name: str, package_dir: Path) -> None:
    """`from module import name`, where name is no submodule: module must define it."""
    source = module_path(module, package_dir)
    defined = _defined_names(source.read_bytes(), str(source))
    if name not in defined and "*" not in defined:
        raise MissingModule(f"{path}: imports {name} from {module}, which defines no such name and has no such module")


@functools.cache
def _defined_names(source: bytes, filename: str) -> frozenset[str]:
    """Names a module binds outside its functions and classes, also by tuple unpacking
    and inside if/try/with blocks (`try: import x` / `except ImportError: x = None`)."""
    defined = set()
    todo = list(ast.parse(source, filename=filename).body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            defined |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
        elif not isinstance(node, ast.Lambda):
            todo.extend(ast.iter_child_nodes(node))
    return frozenset(defined)


def stage_modules(script: str | Path, package_dir: Path = PACKAGE) -> tuple[str, ...]:
    """Every `igkd` module `script` depends on: its imports, their imports, and so on."""
    seen: set[str] = set()
    todo = sorted(direct_imports(Path(script), package_dir))
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += sorted(direct_imports(module_path(name, package_dir), package_dir) - seen)
    return tuple(sorted(seen))


def fingerprint(script: str | Path, package_dir: Path = PACKAGE) -> str:
    """Short hash of `script` and the source of every module in `stage_modules(script)`.

    A module can fingerprint itself (`fingerprint(__file__)`): what a checkpoint's
    settings tag needs, so a resumed run never continues under edited training code."""
    digest = hashlib.sha256(Path(script).read_bytes())
    for name in stage_modules(script, package_dir):
        digest.update(name.encode())
        digest.update(module_path(name, package_dir).read_bytes())
    return digest.hexdigest()[:12]
