"""Load the config's plugins and fingerprint what they register (docs/extending.md).

`plugins: [my_ideas.py, some.module]`: a file is looked up beside the config files
(then in the working folder), a dotted name is imported from sys.path. Loading a plugin
runs its `igkd.register` calls. Each registered function is fingerprinted by its own
source and the sources of the module-level functions, classes and constants it uses,
transitively: editing a plugin's student changes that student's fingerprint and not its
attribution's, so only that student's runs rerun. Code a plugin imports from elsewhere
is not followed (put it in the plugin file, or in igkd, whose modules are followed).
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path

from igkd.io import InputError

_LOADED: dict[str, object] = {}  # resolved entry -> its module, once per process
# The resolved entries, for the jobs this process starts: a job's first lookup of a name
# it does not know loads them (igkd.registry.ensure_plugins), so no script has to.
ENVIRONMENT = "IGKD_PLUGINS"


def is_file_entry(entry: str) -> bool:
    return entry.endswith(".py") or "/" in entry


def resolve_entries(entries: Iterable[str], config_dirs: Iterable[str | Path] = ()) -> list[str]:
    """Plugin entries as this process can load them: files as absolute paths (beside a
    config file, else in the working folder), dotted names unchanged; a missing one is a
    one-line InputError naming it."""
    resolved = []
    for entry in entries:
        entry = str(entry)
        if not is_file_entry(entry):
            if importlib.util.find_spec(entry.split(".")[0]) is None:
                raise InputError(f"plugins: {entry!r}: no such module on the Python path (a file needs .py)")
            resolved.append(entry)
            continue
        places = [Path(d) / entry for d in config_dirs] + [Path(entry)]
        found = next((p for p in places if p.is_file()), None)
        if found is None:
            looked = ", ".join(dict.fromkeys(str(p.parent.resolve()) for p in places))
            raise InputError(f"plugins: {entry}: no such file (looked in {looked})")
        resolved.append(str(found.resolve()))
    return resolved


def load(entries: Iterable[str]) -> None:
    """Import each resolved plugin entry once in this process; an error in a plugin is one
    line naming its file and line."""
    for entry in entries:
        if entry in _LOADED:
            continue
        try:
            if is_file_entry(entry):
                name = f"igkd_plugin_{Path(entry).stem}"
                spec = importlib.util.spec_from_file_location(name, entry)
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                spec.loader.exec_module(module)
            else:
                module = importlib.import_module(entry)
        except InputError:
            raise
        except Exception as err:
            raise InputError(f"plugins: {entry}: {_where(err, entry)}{type(err).__name__}: {err}") from err
        _LOADED[entry] = module
    known = [e for e in os.environ.get(ENVIRONMENT, "").split(os.pathsep) if e]
    os.environ[ENVIRONMENT] = os.pathsep.join(dict.fromkeys([*known, *_LOADED]))


def load_from_environment() -> None:
    """Load the plugins the process that started this one loaded (ENVIRONMENT)."""
    load([e for e in os.environ.get(ENVIRONMENT, "").split(os.pathsep) if e])


def load_from_config(config: dict) -> None:
    """Load `config['plugins']` (as common.smk resolved them) in a job's process."""
    load(config.get("plugins") or [])


def sources_digest(entries: Iterable[str]) -> str:
    """Hash of the plugins' source files ('' without plugins): a warm worker's key."""
    digest = hashlib.sha256()
    for entry in entries:
        path = _source_file(entry)
        digest.update(path.read_bytes() if path is not None and path.is_file() else entry.encode())
    return digest.hexdigest()[:16] if entries else ""


def _source_file(entry: str) -> Path | None:
    """The file a resolved entry loads from: the file itself, or the module's origin."""
    if is_file_entry(entry):
        return Path(entry)
    spec = importlib.util.find_spec(entry)
    return Path(spec.origin) if spec is not None and spec.origin else None


def _where(err: Exception, entry: str) -> str:
    """'file:line: ' of the deepest frame in the plugin's own file, if any."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if f.filename.endswith(Path(entry).name)]
    return f"line {frames[-1].lineno}: " if frames else ""


def origin_of(obj) -> str:
    try:
        return str(Path(inspect.getsourcefile(obj)).name)
    except TypeError:
        return "?"


def caller_origin() -> str:
    """The file of whoever called the register function that calls this."""
    frame = inspect.stack()[2]
    return Path(frame.filename).name


def source_fingerprint(*objects) -> str:
    """Hash of each object's source (a string hashes as itself) with the module-level
    definitions it names, transitively within its module."""
    digest = hashlib.sha256()
    for obj in objects:
        digest.update(_source_closure(obj).encode())
    return digest.hexdigest()[:16]


def _source_closure(obj) -> str:
    if isinstance(obj, str):
        return obj
    try:
        module_source = inspect.getsource(inspect.getmodule(obj))
        own = inspect.getsource(obj)
    except (OSError, TypeError):
        return repr(obj)
    definitions = _top_level_definitions(module_source)
    seen: list[str] = []
    pending = [own]
    parts = [own]
    while pending:
        for name in _names_used(pending.pop()):
            if name in definitions and name not in seen:
                seen.append(name)
                parts.append(definitions[name])
                pending.append(definitions[name])
    return "\n".join(parts)


def _top_level_definitions(source: str) -> dict[str, str]:
    """name -> source segment of each module-level def, class and assignment."""
    out = {}
    for node in ast.parse(source).body:
        segment = ast.get_source_segment(source, node) or ""
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out[node.name] = segment
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        out[name.id] = segment
    return out


def _names_used(source: str) -> set[str]:
    try:
        tree = ast.parse(inspect.cleandoc(source) if source[:1].isspace() else source)
    except SyntaxError:
        return set()
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
