"""Small helpers shared by the workflow scripts: logging to the rule's log, device choice."""

from __future__ import annotations

import logging
import sys


def log_to(path: str | None):
    """Send stderr (and the returned log function) to the rule's log file."""
    if path:
        sys.stderr = open(path, "w", buffering=1)  # noqa: SIM115 - lives for the job

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return log
