"""How a job runs (device, threads, memory layout, log) and the start every workflow
script shares: log to the rule's log, clean errors, claim a device."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from igkd.io import InputError, WriteError

# Errors the user can act on: reported as one line, without a traceback.
CLEAN_ERRORS = (InputError, WriteError)


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Runtime:
    """What every stage needs to know about where it runs; travels as one object."""

    device: str = "cpu"
    threads: int = 1
    channels_last: bool = True
    log: Callable[[str], None] = _to_stderr
    claim: Any = None  # the job's DeviceClaim: holds its GPU slot for as long as the job runs
    precision: str = "fp32"  # the training precision on this device: fp32 | bf16 | fp16 (igkd.training.amp)


DEFAULT_RUNTIME = Runtime()  # CPU, one thread, float32, log to stderr: for calls outside a workflow job


def as_paths(entry) -> list[str]:
    """A Snakemake input/output entry as a list of paths: a named entry holding one file is
    a plain string, one holding several (or none) a list."""
    return [str(entry)] if isinstance(entry, (str, bytes)) else [str(path) for path in entry]


def start_job(snakemake, *, whole_gpu: bool, stage: str = "training", precision: str = "fp32") -> Runtime:
    """Log to the rule's log, claim the job's device (a GPU slot on CUDA, igkd.devices), set
    torch's threads: the first lines of every script that trains or runs a model. A training
    script passes `precision`, the runtime.precision its rule carries in its params (a
    change retrains it), resolved here on the claimed device (an InputError where the
    device cannot honour it); every other stage runs in float32."""
    import torch

    from igkd.devices import DeviceRequest, claim_device, resolve_precision

    log = log_to(snakemake.log[0])
    settings = snakemake.config["runtime"]
    claim = claim_device(DeviceRequest.from_runtime(settings, whole_gpu=whole_gpu, stage=stage), log)
    torch.set_num_threads(snakemake.threads)
    channels_last = bool(getattr(snakemake.params, "channels_last", settings["channels_last"]))
    resolved = resolve_precision(precision, claim.device)
    return Runtime(claim.device, snakemake.threads, channels_last, log, claim, resolved)


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

    # force: a warm worker (igkd.training.worker) logs each job to that job's file
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", force=True)
    return log


def clean_error_line(error: BaseException) -> str:
    """The one line a CLEAN_ERRORS error ends a job with."""
    return f"error: {error.strerror if isinstance(error, WriteError) else error}"


def report_clean_errors(kind, error, traceback) -> None:
    """sys.excepthook: `error: <message>` for CLEAN_ERRORS, Python's default for the rest.

    The interpreter still exits with status 1 afterwards, so Snakemake marks the job
    failed and removes its incomplete outputs.
    """
    if not issubclass(kind, CLEAN_ERRORS):
        sys.__excepthook__(kind, error, traceback)
        return
    line = clean_error_line(error)
    streams = [sys.stderr] if sys.stderr is sys.__stderr__ else [sys.stderr, sys.__stderr__]
    for stream in streams:
        if stream is not None:
            print(line, file=stream, flush=True)
