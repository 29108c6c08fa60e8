"""Where a run's files go: results/<tag>/ and logs/<tag>/.

The tag is `dataset.tag`, or the dataset's name when it is null, so two image folders (or
two variants of CIFAR-10) live side by side. Only paths follow the tag: what the pipeline
does (which dataset it reads, whether the paper's numbers apply) stays keyed on
`dataset.name`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# A safe folder name: letters, digits, '-', '_' and '.', but not '.' or '..'.
TAG_PATTERN = re.compile(r"[A-Za-z0-9._-]+")
NOT_TAGS = (".", "..")
RESULTS_ROOT = "results"
LOGS_ROOT = "logs"


def tag_problem(tag: object) -> str | None:
    """Why `tag` cannot name a results folder (one line, naming dataset.tag), or None."""
    if tag is None or (isinstance(tag, str) and TAG_PATTERN.fullmatch(tag) and tag not in NOT_TAGS):
        return None
    return f"dataset.tag: {tag!r} is not a folder name: use letters, digits, '-', '_' and '.' (not '.' or '..')"


def tag(config: Mapping) -> str:
    """dataset.tag, or dataset.name where the tag is null."""
    dataset = config["dataset"]
    return dataset.get("tag") or dataset["name"]


def results_dir(config: Mapping) -> str:
    """results/<tag>: every output of the run."""
    return f"{RESULTS_ROOT}/{tag(config)}"


def logs_dir(config: Mapping) -> str:
    """logs/<tag>: every job's log."""
    return f"{LOGS_ROOT}/{tag(config)}"
