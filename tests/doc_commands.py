"""Check what the README and docs/*.md tell a reader to type or look up against the repository.

A reader copies commands from the fenced blocks and looks up the files, config keys and
sections the text names; each of those has gone stale before (a moved file, a renamed key, a
column that changed, a section that moved to another page). `problems(path, repo)` returns
one line per broken item, naming the file and line:

- commands in ```bash / sh / shell / console blocks (console: the `$ ` lines): a `snakemake`
  line must parse with Snakemake's own parser, its targets (and --forcerun/--until/...) must
  be rules of the workflow and its --profile / --configfile files must exist; an `igkd` line
  must parse with igkd's parser (so the sub-command and its options exist); a `python`
  script or `-m igkd.<module>` must exist; a `make` target must be in the Makefile;
- paths, in commands and in `inline code`, whose first part is an entry of the repository
  (`profiles/...`, `benchmarks/x.py`, `tools/...`, `src/...`; `config/...` too) must exist.
  Files the reader writes (`my.yaml`) and outputs (`results/...`) are not checked;
- ```yaml blocks that start with a config section must use only schema keys and validate
  when merged over config.yaml; `inline code` dotted names whose first part is a config
  section (`students.ig.p`, `experiments.<name>.runs`) must be schema keys (file names such
  as `stats.md` or `timing.csv` are not keys);
- relative links must reach a file, and a `#section` of a Markdown page must be one of its
  headings; `README "Section"` in any tracked text file must be a heading of README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SHELL_LANGS = ("bash", "sh", "shell", "console")
CONFIG_LANGS = ("yaml", "yml")
OUTPUT_ROOTS = ("results", "logs", "resources", ".venv", ".snakemake", ".igkd", ".git", ".pytest_cache")
WRITTEN_CONFIG = re.compile(r"(?:^#\s*|>\s*)([\w.-]+\.ya?ml)\b", re.MULTILINE)
EXTRA_ROOTS = ("config",)  # not in the repository, but a path there would be one a reader expects
PLACEHOLDER = re.compile(r"[*?<>{}$\[\]]|\.\.\.")
FILE_SUFFIXES = frozenset(  # `stats.md`, `timing.csv`: files, not keys of the stats or timing section
    ("md", "csv", "json", "yaml", "yml", "h5", "hdf5", "pt", "png", "pdf", "npz", "html", "py", "txt", "tsv")
    + ("log", "rst", "smk", "toml", "gz", "sh", "tar")
)
SEPARATORS = frozenset({"&&", "||", ";", "|"})
FENCE = re.compile(r"^(\s*)(```+|~~~+)\s*([\w+-]*)")
CODE_SPAN = re.compile(r"(?<!`)`([^`]+)`(?!`)")
LINK = re.compile(r"(?<!!)\[[^\]\n]*\]\(([^)\s]+)\)|!\[[^\]\n]*\]\(([^)\s]+)\)")
DOTTED_KEY = re.compile(r"([a-z_][a-z0-9_]*)((?:\.(?:[A-Za-z_][A-Za-z0-9_]*|<[^<>.`]+>|\*))+)")
README_SECTION = re.compile(r"""README(?:\.md)?,?\s+(?:\\?"([^"\n]+?)\\?"|“([^”\n]+)”|'([^'\n]+)')""")
RULE = re.compile(r"^\s*rule\s+(\w+)\s*:", re.MULTILINE)
MAKE_TARGET = re.compile(r"^([A-Za-z][\w.-]*)\s*:(?!=)", re.MULTILINE)
SNAKEMAKE_RULE_OPTIONS = ("forcerun", "until", "omit_from", "allowed_rules", "prioritize")
SELF_FILES = ("doc_commands.py", "test_docs_commands.py")
TRACKED_TEXT = ("*.py", "*.smk", "*.yaml", "*.yml", "*.md", "*.rst", "Snakefile", "Makefile", "run")


@dataclass(frozen=True)
class Block:
    """One fenced block: its language, its lines and the line number of its first line."""

    lang: str
    lines: tuple[str, ...]
    start: int


@dataclass(frozen=True)
class Command:
    """One simple command of a block (no `&&`, `|`, env assignments), where it was found."""

    argv: tuple[str, ...]
    where: str


@dataclass
class Repo:
    """What the docs are checked against, each read once."""

    root: Path = REPO
    _cache: dict = field(default_factory=dict)

    @cached_property
    def roots(self) -> frozenset[str]:
        entries = {p.name for p in self.root.iterdir()} - set(OUTPUT_ROOTS)
        return frozenset(entries | set(EXTRA_ROOTS))

    @cached_property
    def rules(self) -> frozenset[str]:
        files = [self.root / "Snakefile", *sorted((self.root / "workflow" / "rules").glob("*.smk"))]
        return frozenset(name for f in files for name in RULE.findall(f.read_text()))

    @cached_property
    def make_targets(self) -> frozenset[str]:
        return frozenset(MAKE_TARGET.findall((self.root / "Makefile").read_text()))

    @cached_property
    def schema(self) -> dict:
        return yaml.safe_load((self.root / "workflow" / "schemas" / "config.schema.yaml").read_text())

    @cached_property
    def sections(self) -> frozenset[str]:
        return frozenset(self.schema["properties"])

    @cached_property
    def base_config(self) -> dict:
        return yaml.safe_load((self.root / "config.yaml").read_text())

    def headings(self, page: Path) -> dict[str, str]:
        """{GitHub anchor: heading text} of a Markdown page."""
        if page not in self._cache:
            self._cache[page] = headings(page.read_text())
        return self._cache[page]


# --------------------------------------------------------------------------- markdown


def blocks_and_prose(text: str) -> tuple[list[Block], list[tuple[int, str]]]:
    """The fenced blocks, and the other lines as (line number, text)."""
    blocks, prose = [], []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opened = FENCE.match(lines[i])
        if not opened:
            prose.append((i + 1, lines[i]))
            i += 1
            continue
        fence, lang, body, j = opened.group(2), opened.group(3).lower(), [], i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            body.append(lines[j][len(opened.group(1)) :] if lines[j].startswith(opened.group(1)) else lines[j])
            j += 1
        if not lang and any(line.startswith("$ ") for line in body):
            lang = "console"  # an untagged transcript
        blocks.append(Block(lang, tuple(body), i + 2))
        i = j + 1
    return blocks, prose


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def headings(text: str) -> dict[str, str]:
    found: dict[str, str] = {}
    _, prose = blocks_and_prose(text)
    for _, line in prose:
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            anchor, n = slug(match.group(1)), 0
            while (anchor if n == 0 else f"{anchor}-{n}") in found:
                n += 1
            found[anchor if n == 0 else f"{anchor}-{n}"] = match.group(1).strip()
    return found


def commands(block: Block, page: str) -> list[Command]:
    """Simple commands of a shell block: continuation lines joined, comments dropped."""
    found, pending, first = [], "", 0
    for offset, raw in enumerate(block.lines):
        line = raw.rstrip()
        if block.lang == "console":
            if not pending and not line.startswith("$ "):
                continue
            line = line[2:] if not pending else line
        if not pending:
            first = block.start + offset
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text, pending = pending + line, ""
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        try:
            tokens = shlex.split(text, comments=True)
        except ValueError as err:
            found.append(Command(("<unparsable>", str(err)), f"{page}:{first}"))
            continue
        argv: list[str] = []
        for token in [*tokens, ";"]:
            if token in SEPARATORS:
                while argv and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", argv[0]):
                    argv.pop(0)  # FOO=bar command ...
                if argv:
                    found.append(Command(tuple(argv), f"{page}:{first}"))
                argv = []
            else:
                argv.append(token)
    return found


# --------------------------------------------------------------------------- checks


def problems(page: Path, repo: Repo) -> list[str]:
    """Every broken command, path, config key, link and section reference of one page."""
    name = _display(page, repo)
    blocks, prose = blocks_and_prose(page.read_text())
    found: list[str] = []
    written = reader_files(page.read_text())
    for block in blocks:
        if block.lang in SHELL_LANGS:
            for command in commands(block, name):
                found += [f"{command.where}: {p}" for p in check_command(command.argv, repo, written)]
        elif block.lang in CONFIG_LANGS:
            found += [f"{name}:{block.start}: {p}" for p in check_config_block(block, repo)]
    text = _prose_text(prose)  # fenced blocks blanked: a code span may wrap onto the next line
    for match in CODE_SPAN.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        where = f"{name}:{line}"
        found += [f"{where}: {p}" for p in check_span(" ".join(match.group(1).split()), repo)]
    for number, line in prose:
        where = f"{name}:{number}"
        for target in (a or b for a, b in LINK.findall(line)):
            found += [f"{where}: {p}" for p in check_link(target, page, repo)]
        found += [f"{where}: {p}" for p in check_readme_sections(line, repo)]
    return found


def reader_files(text: str) -> frozenset[str]:
    """Config files a page has the reader write: `my*.yaml`, and the names it writes with
    `> name.yaml` or heads a yaml block with (`# name.yaml`)."""
    return frozenset(WRITTEN_CONFIG.findall(text))


def _prose_text(prose: list[tuple[int, str]]) -> str:
    """The page with its fenced lines empty, so offsets give line numbers."""
    lines = [""] * (prose[-1][0] if prose else 0)
    for number, line in prose:
        lines[number - 1] = line
    return "\n".join(lines)


def check_command(argv: tuple[str, ...], repo: Repo, written: frozenset[str] = frozenset()) -> list[str]:
    """`written`: config files the page has the reader write (reader_files)."""
    program = Path(argv[0]).name
    found = [p for token in argv[1:] for p in check_path_token(token, repo)]
    if program == "snakemake":
        found += check_snakemake(argv[1:], repo, written)
    elif program == "igkd":
        found += check_igkd(argv[1:])
    elif re.fullmatch(r"python[\d.]*", program):
        found += check_python(argv[1:], repo)
    elif program == "make":
        found += [
            f"make: no target {t!r} in the Makefile"
            for t in argv[1:]
            if not t.startswith("-") and "=" not in t and t not in repo.make_targets
        ]
    elif program == "<unparsable>":
        found.append(f"cannot split the command: {argv[1]}")
    return found


def check_path_token(token: str, repo: Repo) -> list[str]:
    """A relative path into the repository (first part one of its entries) must exist."""
    value = token.split("=", 1)[1] if token.startswith("-") and "=" in token else token
    value = value.split("::", 1)[0].rstrip(",;")
    if not value or value.startswith(("/", "-", "~")) or PLACEHOLDER.search(value) or re.search(r"\s", value):
        return []
    if "/" not in value or value.split("/", 1)[0] not in repo.roots:
        return []  # a bare name (a root entry, or a file the reader writes), or outside the repository
    return [] if (repo.root / value).exists() else [f"path {value} does not exist"]


def check_snakemake(args: tuple[str, ...], repo: Repo, written: frozenset[str] = frozenset()) -> list[str]:
    parsed, error = _parse(_snakemake_parser(), args)
    if error:
        return [f"snakemake cannot parse {' '.join(args)!r}: {error}"]
    found = []
    for target in parsed.targets or []:
        if "/" in target or "." in target:
            continue  # an output file: results/<ds>/...
        if target not in repo.rules:
            found.append(f"snakemake target {target!r} is not a rule of the workflow")
    for option in SNAKEMAKE_RULE_OPTIONS:
        for rule in getattr(parsed, option, None) or []:
            if rule not in repo.rules:
                found.append(f"snakemake --{option.replace('_', '-')} {rule!r} is not a rule of the workflow")
    for profile in parsed.profile or []:
        if not (repo.root / profile / "config.yaml").is_file():
            found.append(f"snakemake --profile {profile}: no {profile}/config.yaml")
    for configfile in parsed.configfile or []:
        if Path(configfile).suffix not in (".yaml", ".yml", ".json"):
            found.append(
                f"snakemake --configfile took {str(configfile)!r}: a target after --configfile is read as a file"
            )
        elif not (repo.root / configfile).is_file() and not is_readers_file(str(configfile), written):
            found.append(
                f"snakemake --configfile {configfile}: not in the repository, and the page does not have the reader "
                "write it (`# name.yaml` heading a yaml block, `> name.yaml`, or a `my*.yaml`)"
            )
    return found


def is_readers_file(name: str, written: frozenset[str]) -> bool:
    return Path(name).name.startswith("my") or name in written


def snakemake_targets(args: tuple[str, ...]) -> list[str]:
    """The targets of a snakemake command line, as Snakemake reads them."""
    parsed, _ = _parse(_snakemake_parser(), args)
    return sorted(parsed.targets) if parsed and parsed.targets else []


def check_igkd(args: tuple[str, ...]) -> list[str]:
    from igkd.cli import _parser

    _, error = _parse(_parser(), args)
    return [f"igkd cannot parse {' '.join(args)!r}: {error}"] if error else []


def check_python(args: tuple[str, ...], repo: Repo) -> list[str]:
    if not args or args[0] == "-c":
        return []
    if args[0] == "-m":
        module = args[1]
        if module == "snakemake":
            return check_snakemake(args[2:], repo)
        if module.startswith("igkd"):
            base = repo.root / "src" / Path(*module.split("."))
            if not (base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()):
                return [f"python -m {module}: no such module in src/"]
            if module == "igkd.cli":
                return check_igkd(args[2:])
        return []
    script = args[0]
    if script.split("/", 1)[0] in repo.roots:
        return []  # check_path_token's
    if not script.startswith("-") and script.endswith(".py") and not (repo.root / script).is_file():
        return [f"python script {script} does not exist"]
    return []


def check_config_block(block: Block, repo: Repo) -> list[str]:
    """A yaml block that starts with a config section: schema keys only, and valid over config.yaml."""
    try:
        data = yaml.safe_load("\n".join(block.lines))
    except yaml.YAMLError as err:
        return [f"yaml block does not parse: {str(err).splitlines()[0]}"]
    if not isinstance(data, dict) or not data or next(iter(data)) not in repo.sections:
        return []
    found = [f"config key {key} is not in the schema" for key in _unknown_keys(data, repo)]
    if found:
        return found
    from igkd.config import merge, validate_config
    from igkd.io import InputError

    try:
        validate_config(merge(repo.base_config, data))
    except InputError as err:
        found.append(f"config block is not valid over config.yaml: {' '.join(str(err).split())}")
    return found


def check_span(span: str, repo: Repo) -> list[str]:
    """An inline code span: a config key (checked against the schema) or a repository path."""
    text = span.strip()
    key = DOTTED_KEY.match(text)
    if key and key.group(1) in repo.sections:
        rest = text[key.end() :]
        parts = [key.group(1), *key.group(2)[1:].split(".")]
        if parts[-1] in FILE_SUFFIXES or rest[:1] not in ("", " ", ":", "=", "/", ",", ")", "("):
            return []  # a file name (stats.md, timing.csv) or not a key at all
        return [] if _schema_node(parts, repo) is not None else [f"config key {'.'.join(parts)} is not in the schema"]
    if " " in text:
        return []
    return check_path_token(text, repo)


def check_link(target: str, page: Path, repo: Repo) -> list[str]:
    if re.match(r"^[a-z]+:", target):
        return []  # http:, https:, mailto:
    path_part, _, anchor = target.partition("#")
    dest = (page.parent / path_part).resolve() if path_part else page
    if not dest.exists():
        return [f"link {target} does not reach a file"]
    if anchor and dest.suffix == ".md" and anchor not in repo.headings(dest):
        return [f"link {target}: {_display(dest, repo)} has no section #{anchor}"]
    return []


def check_readme_sections(line: str, repo: Repo) -> list[str]:
    """`README "Title"` must name a README heading (or its part before a colon)."""
    titles = repo.headings(repo.root / "README.md").values()
    names = ["".join(groups).replace("\\", "") for groups in README_SECTION.findall(line)]
    return [f'README has no section "{name}"' for name in names if not any(t.startswith(name) for t in titles)]


def console_examples(page: Path) -> list[tuple[Command, tuple[str, ...]]]:
    """Each `$ command` of a console block with the output lines shown under it."""
    examples = []
    blocks, _ = blocks_and_prose(page.read_text())
    for block in (b for b in blocks if b.lang == "console"):
        starts = [i for i, line in enumerate(block.lines) if line.startswith("$ ")]
        for i, end in zip(starts, [*starts[1:], len(block.lines)]):
            argv = tuple(shlex.split(block.lines[i][2:], comments=True))
            where = f"{page.name}:{block.start + i}"
            examples.append((Command(argv, where), tuple(line.rstrip() for line in block.lines[i + 1 : end])))
    return examples


def tracked_text_files(repo: Repo) -> list[Path]:
    """The repository's own text files (source, rules, configs, docs), outputs left out."""
    files = []
    for pattern in TRACKED_TEXT:
        for path in repo.root.rglob(pattern):
            parts = path.relative_to(repo.root).parts
            own = path.name in SELF_FILES  # their docstrings and tests quote broken references on purpose
            if parts[0] not in OUTPUT_ROOTS and "__pycache__" not in parts and path.is_file() and not own:
                files.append(path)
    return sorted(set(files))


def section_reference_problems(repo: Repo) -> list[str]:
    """`README "Section"` in the code, rules, configs and docs must name a README heading."""
    found = []
    for path in tracked_text_files(repo):
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            found += [f"{_display(path, repo)}:{number}: {p}" for p in check_readme_sections(line, repo)]
    return found


# --------------------------------------------------------------------------- helpers


def _schema_node(parts: list[str], repo: Repo) -> dict | None:
    """The schema of a dotted key (`<name>` and `*` match any child), or None."""
    nodes = [{"properties": repo.schema["properties"]}]
    for part in parts:
        children = []
        for node in nodes:
            props = _resolve(node, repo).get("properties") or {}
            if part == "*" or part.startswith("<"):
                children += list(props.values())
            elif part in props:
                children.append(props[part])
        if not children:
            return None
        nodes = children
    return nodes[0]


def _resolve(node: dict, repo: Repo) -> dict:
    while "$ref" in node:
        node = repo.schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _unknown_keys(data: dict, repo: Repo, prefix: tuple[str, ...] = ()) -> list[str]:
    unknown = []
    for key, value in data.items():
        path = (*prefix, str(key))
        node = _schema_node(list(path), repo)
        if node is None:
            unknown.append(".".join(path))
        elif isinstance(value, dict) and _resolve(node, repo).get("properties"):
            unknown += _unknown_keys(value, repo, path)
    return unknown


_PARSERS: dict = {}


def _snakemake_parser() -> argparse.ArgumentParser:
    if "snakemake" not in _PARSERS:
        from snakemake.cli import get_argument_parser

        _PARSERS["snakemake"] = get_argument_parser()
    return _PARSERS["snakemake"]


def _parse(parser: argparse.ArgumentParser, args: tuple[str, ...]):
    """(namespace, None), or (None, argparse's error line) instead of exiting."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            return parser.parse_args(list(args)), None
    except SystemExit as exit_:
        if exit_.code == 0:  # --help, --version
            return None, None
        lines = [line for line in stderr.getvalue().splitlines() if line.strip()]
        return None, lines[-1] if lines else f"exit status {exit_.code}"
    except Exception as err:  # an option's own parser: snakemake --resources NAME=INT, --cores N
        return None, f"{type(err).__name__}: {err}"


def _display(path: Path, repo: Repo) -> str:
    try:
        return str(path.resolve().relative_to(repo.root.resolve()))
    except ValueError:
        return path.name  # a page outside the repository (the tests' own)


def doc_pages(root: Path = REPO) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


if __name__ == "__main__":
    repo = Repo()
    report = [p for page in doc_pages() for p in problems(page, repo)] + section_reference_problems(repo)
    print("\n".join(report) or "no problems")
    sys.exit(1 if report else 0)
