"""Shared helpers of the benchmark scripts: timing, peak memory, tables.

Timing: every case is warmed up, then the cases take turns (A B A B ...) so that load from
other processes on a shared machine hits them alike; the figure is the median rate over
the repeats. Ratios between cases measured in one run are what count.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import time
from collections.abc import Callable

import torch

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")  # git-ignored


def setup(threads: int, device: str) -> str:
    """Fix the intra-op threads and resolve `auto` to the device that will be used."""
    from igkd.devices import pick_device

    torch.set_num_threads(threads)
    return pick_device(device)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class PeakMemory:
    """Peak resident memory of this process (ru_maxrss) and, on CUDA, peak allocated GPU memory.

    `reset()` clears the high-water marks (Linux: /proc/self/clear_refs), so a reading
    covers only what ran since; where that is not possible the reading is cumulative.
    """

    def __init__(self, device: str) -> None:
        self.device = device
        self.resettable = True

    def reset(self) -> None:
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
        except OSError:
            self.resettable = False
        if self.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()

    def read(self) -> dict:
        scale = 1 if platform.system() == "Darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
        out = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20}
        if self.device.startswith("cuda"):
            out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
        return out


def children_peak_mb() -> float:
    """Largest peak RSS among finished child processes (e.g. DataLoader workers)."""
    scale = 1 if platform.system() == "Darwin" else 1024
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale / 2**20


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its live children (e.g. DataLoader workers)."""
    total = time.process_time()
    try:
        import psutil
    except ImportError:  # children then go uncounted
        return total
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def run_interleaved(
    cases: dict[str, Callable[[int], int]], *, repeats: int, warmup: int, device: str, min_seconds: float = 0.0
) -> dict[str, dict]:
    """Time each case `repeats` times, taking turns, after `warmup` untimed calls each.

    A case is `fn(repeat_index) -> images processed`. It is called again within one repeat
    until `min_seconds` have passed (for cases too fast to time in one call).
    Returns per case: median/min/max images/s (wall clock), images per CPU-second
    (this process and its workers: on a shared machine the fairer ratio between a
    multi-process and a single-process case) and peak memory over its repeats.
    """
    memory = PeakMemory(device)
    results = {name: {"rates": [], "cpu_rates": [], "peak": {}} for name in cases}
    for _name, fn in cases.items():
        for index in range(warmup):
            fn(-1 - index)
        sync(device)
    for repeat in range(repeats):
        for name, fn in cases.items():
            memory.reset()
            sync(device)
            images, began, cpu_began = 0, time.perf_counter(), cpu_seconds()
            while True:
                images += fn(repeat)
                sync(device)
                elapsed = time.perf_counter() - began
                if elapsed >= min_seconds:
                    break
            results[name]["rates"].append(images / elapsed)
            results[name]["cpu_rates"].append(images / max(cpu_seconds() - cpu_began, 1e-9))
            for key, value in memory.read().items():
                results[name]["peak"][key] = max(results[name]["peak"].get(key, 0.0), value)
    for result in results.values():
        rates = result["rates"]
        result.update(median=statistics.median(rates), low=min(rates), high=max(rates))
        result["cpu_median"] = statistics.median(result["cpu_rates"])
    return results


def format_table(rows: list[dict], columns: list[str]) -> str:
    """A Markdown table (pipe syntax) of `rows`; floats get 3 significant digits or more."""

    def cell(value) -> str:
        if isinstance(value, float):
            if value != value:
                return "nan"
            return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"
        return str(value)

    body = [[cell(row.get(c, "")) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in body)) for i, c in enumerate(columns)]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += ["| " + " | ".join(v.rjust(w) for v, w in zip(r, widths)) + " |" for r in body]
    return "\n".join(lines)


def machine_line(device: str, threads: int) -> str:
    name = torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor() or platform.machine()
    return (
        f"device {device} ({name}), torch threads {threads}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} at start, torch {torch.__version__}"
    )
