"""Ask Snakemake which jobs a run still has to do (`snakemake -n`).

Snakemake itself decides what is pending (missing or stale outputs, changed params or
code), so the plan of a half-finished campaign is the cost of what is left, exactly as
the run would see it. It runs as a subprocess of this Python (`-m snakemake`), with a
wide terminal so no line of the listing is wrapped.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from igkd.io import InputError
from igkd.plan.jobs import Job
from igkd.plan.parse import parse_dry_run
from igkd.plan.runspec import ResolvedRun, snakemake_args

WIDE_COLUMNS = "100000"  # characters per line Snakemake may assume: never wrap a file list
ERROR_LINE = re.compile(r"^\w*(Error|Exception)\b")
NOTHING_TO_BE_DONE = "Nothing to be done"


def dry_run_text(run: ResolvedRun, *, forceall: bool = False) -> str:
    """What `snakemake -n` prints for this run; a failing dry run is one InputError line."""
    command = [sys.executable, "-m", "snakemake", *snakemake_args(run, forceall=forceall)]
    env = {**os.environ, "COLUMNS": WIDE_COLUMNS}
    try:
        done = subprocess.run(command, capture_output=True, text=True, env=env)
    except OSError as err:
        raise InputError(f"could not start snakemake ({err})") from err
    text = done.stdout + done.stderr
    if done.returncode != 0:
        raise InputError(f"snakemake dry run failed (exit {done.returncode}): {error_summary(text)}")
    return text


def error_summary(text: str) -> str:
    """Snakemake's error in one line: the `...Error`/`...Exception` line and the message after
    it (up to the traceback), else the last line printed."""
    lines = [line.rstrip() for line in text.splitlines()]
    for index, line in enumerate(lines):
        if ERROR_LINE.match(line):
            message = [line]
            for following in lines[index + 1 :]:
                if not following.strip() or following.lstrip().startswith("File "):
                    break
                message.append(following.strip())
            return " ".join(message)
    rest = [line for line in lines if line.strip()]
    return rest[-1] if rest else "no output"


def pending_jobs(run: ResolvedRun, *, forceall: bool = False) -> list[Job]:
    """The jobs the run has left (every job of the run with `forceall`)."""
    text = dry_run_text(run, forceall=forceall)
    jobs = parse_dry_run(text)
    if not jobs and NOTHING_TO_BE_DONE not in text and "Job stats" in text:
        raise InputError("snakemake dry run listed jobs, but none could be read (has its output format changed?)")
    return jobs
