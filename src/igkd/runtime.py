"""Small helpers shared by the workflow scripts: logging to the rule's log, clean errors."""

from __future__ import annotations

import logging
import sys

from igkd.io import InputError, WriteError

# Errors the user can act on: reported as one line, without a traceback.
CLEAN_ERRORS = (InputError, WriteError)


def log_to(path: str | None):
    """Send stderr (and the returned log function) to the rule's log file.

    Also installs `report_clean_errors`, so a bad input or a full disk ends the job with
    one readable line in the log (and on the console) instead of a traceback.
    """
    if path:
        sys.stderr = open(path, "w", buffering=1)  # noqa: SIM115 - lives for the job
    sys.excepthook = report_clean_errors

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return log


def report_clean_errors(kind, error, traceback) -> None:
    """sys.excepthook: `error: <message>` for CLEAN_ERRORS, Python's default for the rest.

    The interpreter still exits with status 1 afterwards, so Snakemake marks the job
    failed and removes its incomplete outputs.
    """
    if not issubclass(kind, CLEAN_ERRORS):
        sys.__excepthook__(kind, error, traceback)
        return
    line = f"error: {error.strerror if isinstance(error, WriteError) else error}"
    streams = [sys.stderr] if sys.stderr is sys.__stderr__ else [sys.stderr, sys.__stderr__]
    for stream in streams:
        if stream is not None:
            print(line, file=stream, flush=True)
