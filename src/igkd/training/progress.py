"""Progress in a training's log: every epoch's line says `epoch k/N` and the job's time left.

One format for the teacher, the students and the sweeps (they all train through
igkd.training.loop.fit), and its parser for `igkd status`, which reads how far a running
job is from its log. The time left is the mean wall time of the epochs timed in this
process times the epochs still to train: after a resume the epochs before it are not
timed again (they may have run on another device), so the first line after a resume
rests on that one epoch. Torch-free.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import fmean

MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0
# Shown in seconds below 90 s, in minutes below 90 min, in hours below 48 h, else in days.
SHOW_SECONDS_BELOW = 90.0
SHOW_MINUTES_BELOW = 90 * MINUTE
SHOW_HOURS_BELOW = 48 * HOUR
EPOCH_LINE = re.compile(r"^epoch (?P<epoch>\d+)/(?P<epochs>\d+)\b(?:.*\bseconds=(?P<seconds>[0-9.e+-]+))?")


def format_duration(seconds: float) -> str:
    """'45 s', '12 min', '3.4 h', '2.5 days': an estimate, rounded as one reads it."""
    if seconds < SHOW_SECONDS_BELOW:
        return f"{round(seconds)} s"
    if seconds < SHOW_MINUTES_BELOW:
        return f"{round(seconds / MINUTE)} min"
    if seconds < SHOW_HOURS_BELOW:
        return f"{seconds / HOUR:.1f} h"
    return f"{seconds / DAY:.1f} days"


def time_left(epochs_left: int, timed: Sequence[float]) -> str:
    """'~12 min left': the mean of the `timed` epoch durations x `epochs_left`."""
    if epochs_left <= 0:
        return "no epochs left"
    if not timed:
        return "time left unknown until an epoch is timed"
    return f"~{format_duration(fmean(timed) * epochs_left)} left"


def epoch_line(row: Mapping, epochs: int, timed: Sequence[float], later_epochs: int = 0) -> str:
    """The log line of the epoch `row` describes: `epoch k/N`, its other fields as
    `name=value` (floats to 4 significant digits), then the job's time left, which counts
    this training's epochs after k and `later_epochs`, those of trainings the same job runs
    after this one (a sweep job's later grid points)."""
    epoch = int(row["epoch"])
    fields = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items() if k != "epoch")
    return f"epoch {epoch}/{epochs} {fields} {time_left(epochs - epoch + later_epochs, timed)}"


def resume_line(epoch: int, epochs: int, saved: Sequence[float], later_epochs: int = 0) -> str:
    """What a resumed training has left, before its first epoch here is timed: from the
    epoch times saved with the checkpoint (its history's `seconds`)."""
    left = epochs - epoch + later_epochs
    estimate = time_left(left, saved)
    if saved and left > 0:
        estimate += " at the checkpoint's epoch times"
    return f"epoch {epoch}/{epochs} done before this resume: {left} epochs left, {estimate}"


@dataclass(frozen=True)
class EpochMark:
    """The last `epoch k/N` line of a log: how far a training is."""

    epoch: int
    epochs: int
    seconds: float | None  # that epoch's training time (its `seconds=` field), if the line has one

    @property
    def fraction_done(self) -> float:
        return min(self.epoch / self.epochs, 1.0) if self.epochs else 0.0


def last_epoch(log_text: str) -> EpochMark | None:
    """The last epoch line of a training log (an `epoch_line`), or None when it has none yet."""
    for line in reversed(log_text.splitlines()):
        match = EPOCH_LINE.match(line)
        if match:
            seconds = match["seconds"]
            return EpochMark(int(match["epoch"]), int(match["epochs"]), float(seconds) if seconds else None)
    return None
