"""Read the job blocks out of what `snakemake -n` prints.

A pending job is printed as a block that starts with `rule <name>:` (or `localrule`,
`checkpoint`) and continues with indented `key: value` lines: input, output, jobid,
wildcards, priority, threads, resources, and others (log, benchmark, reason) that the plan
does not need. Jobs of a group (`Group job students ...:`) are printed the same way,
indented. Lines of a block the parser does not know are skipped, and a block ends at
the first line that is not a `key: value` line (a timestamp, the job table, the next
block), so a Snakemake version that prints more keeps working.
"""

from __future__ import annotations

import re

from igkd.plan.jobs import Job

HEADER = re.compile(r"^\s*(local)?(rule|checkpoint) ([A-Za-z_]\w*):\s*$")  # indented inside a group job
FIELD = re.compile(r"^\s+(\w+): ?(.*)$")
FILE_SEPARATOR = ", "
# `a=1, b=x, c` : split only before a `name=`, so a value with ", " in it stays whole
ASSIGNMENT_SEPARATOR = re.compile(r", (?=[A-Za-z_]\w*=)")


def parse_dry_run(text: str) -> list[Job]:
    """The jobs of a dry run's output, in the order printed."""
    jobs: list[Job] = []
    block: dict | None = None
    for line in text.splitlines():
        header = HEADER.match(line)
        if header:
            if block is not None:
                jobs.append(_job(block, len(jobs)))
            block = {"rule": header.group(3), "local": bool(header.group(1))}
            continue
        if block is None:
            continue
        field = FIELD.match(line)
        if field:
            block.setdefault(field.group(1), field.group(2).strip())  # first wins: no key is repeated
        elif line.strip():  # any other line ends the block
            jobs.append(_job(block, len(jobs)))
            block = None
    if block is not None:
        jobs.append(_job(block, len(jobs)))
    return jobs


def _job(block: dict, order: int) -> Job:
    return Job(
        rule=block["rule"],
        jobid=_int(block.get("jobid"), default=-1 - order),  # unique even if a version stops printing it
        order=order,
        inputs=_files(block.get("input", "")),
        outputs=_files(block.get("output", "")),
        wildcards=_assignments(block.get("wildcards", ""), numbers=False),
        threads=max(_int(block.get("threads"), default=1), 1),
        resources=_assignments(block.get("resources", "")),
        priority=_int(block.get("priority"), default=0),
        local=block["local"],
    )


def _files(text: str) -> tuple[str, ...]:
    return tuple(path.strip() for path in text.split(FILE_SEPARATOR) if path.strip())


def _assignments(text: str, numbers: bool = True) -> dict:
    """'a=1, b=x' -> {'a': 1, 'b': 'x'}; with `numbers`, numbers become int or float
    (resources), else every value stays text (wildcards: '1.0' is a path part)."""
    out = {}
    for item in ASSIGNMENT_SEPARATOR.split(text):
        name, sep, value = item.partition("=")
        if sep:
            out[name.strip()] = _number(value.strip()) if numbers else value.strip()
    return out


def _number(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _int(text: str | None, default: int) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        return default
