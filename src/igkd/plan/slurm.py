"""SLURM time limits sized from the plan, printed or written into a profile.

A limit too short kills a job near its end; one far too long keeps it in the queue.
Each rule gets its longest job's estimate x a safety factor plus a margin, rounded up
(igkd.plan.assumptions.SlurmAssumptions). Rules the profile groups (`groups:`,
`group-components: N`) run N jobs one after another in one SLURM job, so their limit
is N times a job's.

The profile is edited line by line (ruamel.yaml when installed would keep the same):
only the `runtime:` values under `set-resources:` change, every other line, comment
and anchor stays as written.
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
RUNTIME_LINE = re.compile(r"^(\s+)runtime:\s*([^#]*?)\s*(#.*)?$")
DEFAULT_INDENT = "  "


@dataclass(frozen=True)
class RuleRuntime:
    rule: str
    jobs: int
    longest_s: float
    minutes: int  # one job's limit
    group: int = 1  # jobs per SLURM job (group-components), 1 when not grouped

    @property
    def limit(self) -> int:
        """The limit the rule needs in set-resources: a group runs its jobs one after another."""
        return self.minutes * self.group


def minutes_for(seconds: float, slurm: SlurmAssumptions = ASSUMPTIONS.slurm) -> int:
    """seconds x safety + margin, in minutes, rounded up to slurm.round_to_min."""
    raw = seconds / 60 * slurm.safety_factor + slurm.margin_min
    return int(math.ceil(raw / slurm.round_to_min) * slurm.round_to_min)


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
    out = [
        RuleRuntime(rule, info["jobs"], info["longest_seconds"], minutes_for(info["longest_seconds"]), groups[rule])
        for rule, info in rules.items()
    ]
    return sorted(out, key=lambda r: (-r.longest_s, r.rule))


def runtime_lines(items: list[RuleRuntime]) -> list[str]:
    s = ASSUMPTIONS.slurm
    lines = [
        f"SLURM runtime per rule: longest job x {s.safety_factor:g} + {s.margin_min:g} min, "
        f"rounded up to {s.round_to_min} min; a group of N jobs gets N x that",
        f"{'rule':<30} {'jobs':>6} {'longest job':>12} {'runtime':>9} {'group':>6} {'set-resources':>14}",
    ]
    for r in items:
        group = f"x{r.group}" if r.group > 1 else "-"
        lines.append(
            f"{r.rule:<30} {r.jobs:>6,} {r.longest_s / 60:>8.1f} min {r.minutes:>5} min {group:>6} {r.limit:>10} min"
        )
    return lines


def current_runtimes(jobs) -> dict[str, float]:
    """rule -> the longest `runtime` resource (minutes) its jobs get now, as the dry run shows it."""
    current: dict[str, float] = {}
    for job in jobs:
        current[job.rule] = max(current.get(job.rule, 0), job.resource("runtime", 0))
    return current


def profile_file(path: str | Path) -> Path:
    path = Path(path)
    path = path / PROFILE_FILE if path.is_dir() else path
    if not path.is_file():
        raise InputError(f"--write-slurm-profile {path}: not found")
    return path


def write_profile(path: str | Path, items: list[RuleRuntime], current: dict[str, float]) -> list[str]:
    """Set `runtime:` under set-resources for each rule the profile lists there, and add the
    rules it does not list whose estimate exceeds the runtime they get now (`current`, minutes
    from the dry run). Returns what changed, one line per rule."""
    path = profile_file(path)
    read_profile(path)  # valid YAML before we touch it
    lines = path.read_text().splitlines()
    start = next((i for i, line in enumerate(lines) if SET_RESOURCES.match(line)), None)
    if start is None:
        lines += ["", "set-resources:"]
        start = len(lines) - 1
    changes = []
    for item in items:
        comment = _comment(item)
        block = _rule_block(lines, start, item.rule)
        if block is None:
            if item.limit <= current.get(item.rule, 0):
                continue
            end = _block_end(lines, start)
            indent = _child_indent(lines, start)
            lines[end:end] = [f"{indent}{item.rule}:", f"{indent * 2}runtime: {item.limit} {comment}"]
            changes.append(f"{item.rule}: runtime {item.limit} min (added)")
            continue
        header, body_end = block
        runtime = next((i for i in range(header + 1, body_end) if RUNTIME_LINE.match(lines[i])), None)
        if runtime is None:
            body_indent = _body_indent(lines, header, body_end)
            lines.insert(header + 1, f"{body_indent}runtime: {item.limit} {comment}")
            changes.append(f"{item.rule}: runtime {item.limit} min (added to its set-resources)")
        else:
            match = RUNTIME_LINE.match(lines[runtime])
            old = match.group(2)
            lines[runtime] = f"{match.group(1)}runtime: {item.limit} {comment}"
            changes.append(f"{item.rule}: runtime {old} -> {item.limit} min")
    path.write_text("\n".join(lines) + "\n")
    read_profile(path)  # still valid YAML
    return changes


def _comment(item: RuleRuntime) -> str:
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
