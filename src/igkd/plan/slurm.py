"""SLURM time limits and memory sized from the plan, printed or written into a profile.

A limit too short kills a job near its end; one far too long keeps it in the queue.
Each rule gets its longest job's estimate x a safety factor plus a margin, rounded up
(igkd.plan.assumptions.SlurmAssumptions). Rules the profile groups (`groups:`,
`group-components: N`) run N jobs one after another in one SLURM job, so their limit
is N times a job's. Memory likewise: the rule's largest job's host memory
(igkd.plan.memory: a measured peak plus its data) x a factor plus a margin, per job; a
group asks for the sum of its members' (Snakemake sizes a group so).

The profile is edited line by line (ruamel.yaml when installed would keep the same):
only the `runtime:` and `mem_mb:` values under `set-resources:` change, every other line,
comment and anchor stays as written.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from igkd.io import InputError
from igkd.plan.assumptions import ASSUMPTIONS, SlurmAssumptions
from igkd.plan.runspec import PROFILE_FILE, read_profile

SET_RESOURCES = re.compile(r"^set-resources:\s*(#.*)?$")
TOP_LEVEL_KEY = re.compile(r"^[^\s#][^:]*:")
RULE_LINE = re.compile(r"^(\s+)([A-Za-z_]\w*):\s*(#.*)?$")
VALUE_LINE = r"^(\s+){key}:\s*([^#]*?)\s*(#.*)?$"
MEGABYTE = 1_000_000
DEFAULT_INDENT = "  "


@dataclass(frozen=True)
class RuleRuntime:
    rule: str
    jobs: int
    longest_s: float
    minutes: int  # one job's limit
    group: int = 1  # jobs per SLURM job (group-components), 1 when not grouped
    memory_bytes: int | None = None  # the largest job's host memory estimate (None: none made)
    mem_mb: int | None = None  # what set-resources gets for it, per job

    @property
    def settings(self) -> dict[str, int]:
        """The set-resources values to write: runtime, and mem_mb where estimated."""
        values = {"runtime": self.limit}
        if self.mem_mb is not None:
            values["mem_mb"] = self.mem_mb
        return values

    @property
    def limit(self) -> int:
        """The limit the rule needs in set-resources: a group runs its jobs one after another."""
        return self.minutes * self.group


def minutes_for(seconds: float, slurm: SlurmAssumptions = ASSUMPTIONS.slurm) -> int:
    """seconds x safety + margin, in minutes, rounded up to slurm.round_to_min."""
    raw = seconds / 60 * slurm.safety_factor + slurm.margin_min
    return int(math.ceil(raw / slurm.round_to_min) * slurm.round_to_min)


def mem_mb_for(memory_bytes: float, slurm: SlurmAssumptions = ASSUMPTIONS.slurm) -> int:
    """bytes / 1e6 x safety + margin, rounded up to slurm.mem_round_mb."""
    raw = memory_bytes / MEGABYTE * slurm.mem_safety_factor + slurm.mem_margin_mb
    return int(math.ceil(raw / slurm.mem_round_mb) * slurm.mem_round_mb)


def group_sizes(profile: dict) -> defaultdict[str, int]:
    """rule -> group-components of its group (1 for a rule the profile does not group)."""
    groups, components = profile.get("groups") or {}, profile.get("group-components") or {}
    if isinstance(groups, list):
        groups = dict(str(g).split("=", 1) for g in groups if "=" in str(g))
    if isinstance(components, list):
        components = dict(str(c).split("=", 1) for c in components if "=" in str(c))
    return defaultdict(lambda: 1, {rule: int(components.get(group, 1)) for rule, group in groups.items()})


def runtimes(rules: dict[str, dict], profile: dict) -> list[RuleRuntime]:
    """Per rule of the plan (`Plan.rules`), its SLURM limit, longest first."""
    groups = group_sizes(profile)
    out = []
    for rule, info in rules.items():
        memory = info.get("memory_bytes")
        out.append(
            RuleRuntime(
                rule,
                info["jobs"],
                info["longest_seconds"],
                minutes_for(info["longest_seconds"]),
                groups[rule],
                memory,
                None if memory is None else mem_mb_for(memory),
            )
        )
    return sorted(out, key=lambda r: (-r.longest_s, r.rule))


def runtime_lines(items: list[RuleRuntime]) -> list[str]:
    s = ASSUMPTIONS.slurm
    lines = [
        f"SLURM runtime per rule: longest job x {s.safety_factor:g} + {s.margin_min:g} min, "
        f"rounded up to {s.round_to_min} min; a group of N jobs gets N x that",
        f"mem_mb per job: its largest job's host memory x {s.mem_safety_factor:g} + {s.mem_margin_mb} MB, "
        f"rounded up to {s.mem_round_mb} MB (a group asks for the sum); '-': the profile's default",
        f"{'rule':<30} {'jobs':>6} {'longest job':>12} {'runtime':>9} {'group':>6} {'set-resources':>14} "
        f"{'memory':>9} {'mem_mb':>7}",
    ]
    for r in items:
        group = f"x{r.group}" if r.group > 1 else "-"
        memory = "-" if r.memory_bytes is None else f"{r.memory_bytes / MEGABYTE:,.0f} MB"
        mem_mb = "-" if r.mem_mb is None else f"{r.mem_mb:,}"
        lines.append(
            f"{r.rule:<30} {r.jobs:>6,} {r.longest_s / 60:>8.1f} min {r.minutes:>5} min {group:>6} {r.limit:>10} min "
            f"{memory:>9} {mem_mb:>7}"
        )
    return lines


def current_resources(jobs) -> dict[str, dict[str, float]]:
    """rule -> the largest `runtime` (minutes) and `mem_mb` its jobs get now, as the dry run shows them."""
    current: dict[str, dict[str, float]] = {}
    for job in jobs:
        entry = current.setdefault(job.rule, {})
        for name in ("runtime", "mem_mb"):
            entry[name] = max(entry.get(name, 0), job.resource(name, 0))
    return current


def profile_file(path: str | Path) -> Path:
    path = Path(path)
    path = path / PROFILE_FILE if path.is_dir() else path
    if not path.is_file():
        raise InputError(f"--write-slurm-profile {path}: not found")
    return path


def write_profile(path: str | Path, items: list[RuleRuntime], current: dict[str, dict[str, float]]) -> list[str]:
    """Set `runtime:` and (where estimated) `mem_mb:` under set-resources for each rule the
    profile lists there, and add the rules it does not list whose estimate exceeds what they
    get now (`current`, from the dry run). Returns what changed, one line per value."""
    path = profile_file(path)
    read_profile(path)  # valid YAML before we touch it
    lines = path.read_text().splitlines()
    start = next((i for i, line in enumerate(lines) if SET_RESOURCES.match(line)), None)
    if start is None:
        lines += ["", "set-resources:"]
        start = len(lines) - 1
    changes = []
    for item in items:
        settings = item.settings
        block = _rule_block(lines, start, item.rule)
        if block is None:
            now = current.get(item.rule, {})
            needed = {name: value for name, value in settings.items() if value > now.get(name, 0)}
            if not needed:
                continue
            end = _block_end(lines, start)
            indent = _child_indent(lines, start)
            added = [f"{indent * 2}{name}: {value} {_comment(item, name)}" for name, value in needed.items()]
            lines[end:end] = [f"{indent}{item.rule}:", *added]
            changes += [f"{item.rule}: {name} {value} {UNITS[name]} (added)" for name, value in needed.items()]
            continue
        for name, value in settings.items():
            header, body_end = _rule_block(lines, start, item.rule)
            pattern = re.compile(VALUE_LINE.format(key=name))
            found = next((i for i in range(header + 1, body_end) if pattern.match(lines[i])), None)
            if found is None:
                body_indent = _body_indent(lines, header, body_end)
                lines.insert(header + 1, f"{body_indent}{name}: {value} {_comment(item, name)}")
                changes.append(f"{item.rule}: {name} {value} {UNITS[name]} (added to its set-resources)")
            else:
                match = pattern.match(lines[found])
                lines[found] = f"{match.group(1)}{name}: {value} {_comment(item, name)}"
                changes.append(f"{item.rule}: {name} {match.group(2)} -> {value} {UNITS[name]}")
    path.write_text("\n".join(lines) + "\n")
    read_profile(path)  # still valid YAML
    return changes


UNITS = {"runtime": "min", "mem_mb": "MB"}


def _comment(item: RuleRuntime, name: str) -> str:
    if name == "mem_mb":
        per = f", per job ({item.group} in a group: {item.group} x this)" if item.group > 1 else ""
        return f"# MB: igkd plan (measured peak + data) x safety + margin{per}"
    if item.group > 1:
        return f"# minutes: igkd plan, {item.group} jobs (group-components) x {item.minutes} min"
    return "# minutes: igkd plan (longest job x safety + margin)"


def _block_end(lines: list[str], start: int) -> int:
    """Index after the last indented line of the top-level block starting at `start`."""
    end = start + 1
    for i in range(start + 1, len(lines)):
        if TOP_LEVEL_KEY.match(lines[i]):
            break
        if lines[i].startswith((" ", "\t")) and lines[i].strip():
            end = i + 1
    return end


def _child_indent(lines: list[str], start: int) -> str:
    for line in lines[start + 1 : _block_end(lines, start)]:
        match = RULE_LINE.match(line)
        if match:
            return match.group(1)
    return DEFAULT_INDENT


def _rule_block(lines: list[str], start: int, rule: str) -> tuple[int, int] | None:
    """(header index, end index) of `rule:` directly under set-resources, or None."""
    end = _block_end(lines, start)
    indent = _child_indent(lines, start)
    for i in range(start + 1, end):
        match = RULE_LINE.match(lines[i])
        if match and match.group(1) == indent and match.group(2) == rule:
            body_end = i + 1
            for j in range(i + 1, end):
                text = lines[j]
                if text.strip() and not text.lstrip().startswith("#") and len(text) - len(text.lstrip()) <= len(indent):
                    break
                body_end = j + 1
            return i, body_end
    return None


def _body_indent(lines: list[str], header: int, end: int) -> str:
    for line in lines[header + 1 : end]:
        if line.strip() and not line.lstrip().startswith("#"):
            return line[: len(line) - len(line.lstrip())]
    header_indent = lines[header][: len(lines[header]) - len(lines[header].lstrip())]
    return header_indent + DEFAULT_INDENT
