"""Wall time of a job DAG on given cores and GPU slots: a list scheduler like Snakemake's.

Whenever cores free up, Snakemake starts the ready jobs (all inputs done) that fit, the
highest `priority` first; among equal priorities this follows the order the dry run
lists the jobs. A job needs min(threads, cores) cores and its `gpu` slots; a job that
does not fit is passed over for a smaller one behind it (Snakemake's greedy selection).
The makespan is when the last job ends.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Task:
    id: int
    seconds: float
    cores: int = 1
    gpus: int = 0  # GPU slots
    priority: int = 0
    order: int = 0  # listing order: the tie-breaker
    deps: frozenset = field(default_factory=frozenset)  # ids of tasks that must end first


@dataclass(frozen=True)
class Slot:
    start: float
    end: float


def schedule(tasks: Iterable[Task], cores: int, gpu_slots: int | None = None) -> dict[int, Slot]:
    """Start and end of every task. Dependencies on ids outside `tasks` count as done;
    a task asking for more than there is gets all of it. A cycle raises ValueError."""
    tasks = {t.id: t for t in tasks}
    need_cores = {i: max(1, min(t.cores, cores)) for i, t in tasks.items()}
    need_gpus = {i: min(t.gpus, gpu_slots) if gpu_slots is not None else 0 for i, t in tasks.items()}
    waiting = {i: {d for d in t.deps if d in tasks and d != i} for i, t in tasks.items()}
    dependents: dict[int, list[int]] = {i: [] for i in tasks}
    for i, deps in waiting.items():
        for d in deps:
            dependents[d].append(i)
    ready = [_rank(tasks[i]) for i, deps in waiting.items() if not deps]
    heapq.heapify(ready)
    running: list[tuple[float, int, int]] = []  # (end, order, id)
    slots: dict[int, Slot] = {}
    free_cores, free_gpus, now = cores, gpu_slots or 0, 0.0
    while ready or running:
        passed_over = []
        while ready and free_cores > 0:  # every job needs a core: none fits once they are taken
            rank = heapq.heappop(ready)
            i = rank[-1]
            if need_cores[i] <= free_cores and need_gpus[i] <= free_gpus:
                free_cores -= need_cores[i]
                free_gpus -= need_gpus[i]
                slots[i] = Slot(now, now + tasks[i].seconds)
                heapq.heappush(running, (slots[i].end, tasks[i].order, i))
            else:
                passed_over.append(rank)
        for rank in passed_over:
            heapq.heappush(ready, rank)
        if not running:
            break
        now = running[0][0]
        while running and running[0][0] <= now:
            _, _, done = heapq.heappop(running)
            free_cores += need_cores[done]
            free_gpus += need_gpus[done]
            for after in dependents[done]:
                waiting[after].discard(done)
                if not waiting[after]:
                    heapq.heappush(ready, _rank(tasks[after]))
    if len(slots) != len(tasks):
        stuck = sorted(set(tasks) - set(slots))[:5]
        raise ValueError(f"jobs {stuck} can never start: their dependencies form a cycle")
    return slots


def _rank(task: Task) -> tuple:
    """Heap order of ready tasks: higher priority first, then the listing order."""
    return (-task.priority, task.order, task.id)


def makespan(tasks: Iterable[Task], cores: int, gpu_slots: int | None = None) -> float:
    """When the last task ends (0 for no tasks)."""
    slots = schedule(tasks, cores, gpu_slots)
    return max((s.end for s in slots.values()), default=0.0)
