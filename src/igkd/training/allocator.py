"""Let a CPU process reuse the memory it frees instead of handing it back to the OS (glibc).

glibc serves each large allocation (above a threshold of at most 32 MiB) with a fresh
mmap and unmaps it on free, so every training or IG step faults its large activations in
again, page by page. Measured here on the width-1.0 CIFAR teacher (IG, 64 interpolation
points per pass, one thread): 27 % of CPU time in the kernel, 1.4x slower than with
this setting. Raising the mmap and trim thresholds keeps freed blocks in the heap for
the next step. Results are unaffected; peak memory is about the same, but the process
keeps it until it exits. A no-op outside Linux/glibc.
"""

from __future__ import annotations

import ctypes
import platform

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
THRESHOLD = 1 << 30  # blocks up to 1 GiB come from (and return to) the reusable heap

_applied = False


def reuse_freed_memory() -> bool:
    """Apply the setting once per process; True when it is in effect."""
    global _applied
    if _applied or platform.system() != "Linux":
        return _applied
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False
    _applied = bool(mallopt(M_MMAP_THRESHOLD, THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, THRESHOLD))
    return _applied


def release_free_memory() -> bool:
    """Hand the heap's free pages back to the OS now (glibc malloc_trim), so that a
    measurement of resident memory sees what the next allocations really take instead
    of their reuse of blocks `reuse_freed_memory` kept. True when it ran."""
    if platform.system() != "Linux":
        return False
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        return False
    return True
