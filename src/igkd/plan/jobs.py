"""The jobs a run still has to do, and which waits for which.

`snakemake -n` lists each pending job with its files but not its dependencies; a job
depends on the jobs that produce its inputs, so the DAG is rebuilt by matching one job's
outputs to another's inputs (an input nobody produces already exists).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, eq=False)
class Job:
    """One pending job as `snakemake -n` prints it."""

    rule: str
    jobid: int
    order: int  # position in the dry run's listing: the scheduler's tie-breaker
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    wildcards: dict = field(default_factory=dict)
    threads: int = 1
    resources: dict = field(default_factory=dict)
    priority: int = 0
    local: bool = False  # printed as `localrule`

    @property
    def is_target(self) -> bool:
        """A rule that only collects inputs (all, figures, controls): no outputs, no work."""
        return not self.outputs

    def resource(self, name: str, default=0):
        value = self.resources.get(name, default)
        return value if isinstance(value, int | float) else default


def dependencies(jobs: list[Job]) -> dict[int, set[int]]:
    """jobid -> jobids of the pending jobs that produce one of its inputs."""
    producer = {path: job.jobid for job in jobs for path in job.outputs}
    deps: dict[int, set[int]] = {}
    for job in jobs:
        deps[job.jobid] = {producer[p] for p in job.inputs if p in producer and producer[p] != job.jobid}
    return deps


def ancestors(jobids: set[int], deps: dict[int, set[int]]) -> set[int]:
    """`jobids` and every pending job they wait for, directly or not."""
    seen: set[int] = set()
    todo = list(jobids)
    while todo:
        jobid = todo.pop()
        if jobid in seen:
            continue
        seen.add(jobid)
        todo.extend(deps.get(jobid, ()))
    return seen
