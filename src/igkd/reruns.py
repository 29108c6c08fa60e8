"""What reruns when a config key changes: one declaration per schema key.

Each leaf key of workflow/schemas/config.schema.yaml says which rules get jobs to run
when it changes on a finished workflow (`x-reruns`, rule names or @groups from the
schema's `x-rule-groups`), and, where a key acts only in some setting (a CIFAR-10 path on
a digits run), under which settings (`x-when`: key -> value). A key that reruns nothing
declares `[]` and says why in `x-why`. tests/test_reruns.py checks that every leaf has a
declaration and, on a finished tiny workflow, that changing each key makes `snakemake -n`
list exactly the declared rules; docs/what-reruns-when.md is rendered from the same
declarations (`python -m igkd.reruns --write docs/what-reruns-when.md`).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from igkd.config import SCHEMA, load_schema

# Rules without outputs (targets only): they run whenever anything they collect does.
TARGET_RULES = frozenset(
    {
        "all",
        "ablation",
        "montecarlo",
        "compression",
        "grid",
        "kd_grid",
        "overlay_p",
        "controls",
        "timing",
        "external",
        "power",
        "figures",
        "paper",
    }
)


@dataclass(frozen=True)
class Declaration:
    """One leaf key's declaration."""

    key: str  # dotted path, e.g. students.kd.alpha
    node: Mapping  # its schema node
    reruns: tuple[str, ...] | None  # rule names and @groups as written; None: undeclared
    when: Mapping  # settings under which `reruns` applies (dotted key -> value); {} = always
    why: str

    def rules(self, groups: Mapping[str, list[str]]) -> set[str]:
        """The declared rules, @groups expanded."""
        return expand(self.reruns or (), groups)

    def applies(self, config: Mapping) -> bool:
        return all(lookup(config, key) == value for key, value in self.when.items())


def expand(names, groups: Mapping[str, list[str]]) -> set[str]:
    """Rule names from a declaration: `rule`, `@group` (its rules), and `-rule` or `-@group`
    to take those out again (a group minus the one rule a key does not reach), in order."""
    rules: set[str] = set()
    for name in names:
        drop = name.startswith("-")
        name = name.removeprefix("-")
        if name.startswith("@"):
            if name[1:] not in groups:
                raise KeyError(f"unknown rule group {name!r}; the schema's x-rule-groups has {sorted(groups)}")
            named = expand(groups[name[1:]], groups)
        else:
            named = {name}
        rules = rules - named if drop else rules | named
    return rules


def lookup(config: Mapping, dotted: str):
    node = config
    for part in dotted.split("."):
        node = node[part]
    return node


def leaves(node: Mapping, root: Mapping, path: str = "") -> Iterator[tuple[str, Mapping]]:
    """Every leaf key under `node` of the schema `root` (objects with properties are walked into)."""
    for name, child in node.get("properties", {}).items():
        key = f"{path}.{name}" if path else name
        target = resolve(child, root)
        if target.get("type") == "object" and "properties" in target and "x-reruns" not in child:
            yield from leaves(target, root, key)
        else:
            yield key, child


def resolve(node: Mapping, root: Mapping) -> Mapping:
    """A node with its local `$ref` (#/$defs/...) merged under its own keys."""
    ref = node.get("$ref")
    if not ref:
        return node
    target = root
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}


def declarations(schema_path=SCHEMA) -> tuple[list[Declaration], dict[str, list[str]]]:
    """(one Declaration per leaf key, the rule groups) from the schema."""
    schema = load_schema(schema_path)
    found = []
    for key, node in leaves(schema, schema):
        reruns = node.get("x-reruns")
        declared = None if reruns is None else tuple(reruns)
        found.append(Declaration(key, node, declared, node.get("x-when", {}), node.get("x-why", "")))
    return found, schema.get("x-rule-groups", {})


PAGE_HEADER = """# What reruns when

Generated from the `x-reruns` declarations in `workflow/schemas/config.schema.yaml` by
`python -m igkd.reruns --write docs/what-reruns-when.md`; `tests/test_reruns.py` walks every
key on a finished tiny workflow (`pytest -m keywalk`, run by `.ci/run`) and fails where a
change makes `snakemake -n` list other rules than these.

Changing a key reruns the rules listed (their jobs that the change touches, not every job
of the rule: a KD setting retrains the students of KD methods only) and what reads their
outputs. `@name` is a group of rules (below), `-rule` takes one out of a group. A key
marked "(with ...)" acts only under that setting. Adding runs, students, methods or
experiments trains only the new students and reruns what summarises them. Rule names are
as with `sweeps.grouping: sweep`; with `point`, read `train_sweep_point` for
`train_sweep_kd` and `train_sweep_overlay_p`. `compare_paper` compares only on CIFAR-10 at
the paper's settings (`src/igkd/data/paper_numbers.yaml`, `settings`): there it also reruns
when one of those settings changes; elsewhere it writes one line and reads nothing.
"""


def table(schema_path=SCHEMA) -> str:
    """One row per leaf key, in schema order, then the groups' rules."""
    found, groups = declarations(schema_path)
    lines = ["| key | reruns |", "|---|---|"]
    for decl in found:
        what = ", ".join(f"`{name}`" for name in decl.reruns) if decl.reruns else "nothing"
        if decl.when:
            setting = ", ".join(f"{k}: {'null' if v is None else v}" for k, v in decl.when.items())
            what = f"{what} (with {setting}; else nothing)"
        if decl.why:
            what += f": {decl.why}"
        lines.append(f"| `{decl.key}` | {what} |")
    legend = [
        f"- `@{name}`: {', '.join(f'`{rule}`' for rule in sorted(expand([f'@{name}'], groups)))}" for name in groups
    ]
    return "\n".join([*lines, "", "## Rule groups", "", *legend])


def page(schema_path=SCHEMA) -> str:
    return f"{PAGE_HEADER}\n{table(schema_path)}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="write the page here (else print it)")
    args = parser.parse_args(argv)
    if args.write:
        args.write.write_text(page())
    else:
        print(page(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
