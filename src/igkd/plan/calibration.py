"""The calibration cache: measured numbers keyed by the model settings they were measured with.

Measuring takes minutes; a plan is asked for often (after each config edit, for each
profile). So every number is stored under `.igkd/calibration/<device>.json` in the
current directory with when and where it was measured, and a later plan measures only
the settings it has no number for. The cost model asks for numbers through `value(key)`;
`Recorder` answers the same questions with placeholders to find out which keys a plan
needs before anything is measured.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from igkd.io import InputError

CACHE_DIR = Path(".igkd") / "calibration"
FORMAT = 1
# What each kind of number is (its unit), and so which measurement makes it (igkd.plan.measure).
UNITS = {
    "teacher_step": "s/step",  # teacher forward + backward + SGD step, one batch
    "student_step": "s/step",  # student forward + backward + Adam step, one batch
    "teacher_tap": "s/step",  # AT methods: the teacher forward to the tapped block, no grad
    "teacher_eval": "images/s",  # inference throughput
    "student_eval": "images/s",
    "ig": "points/s",  # IG interpolation points through the teacher, forward + backward
    "startup_training": "s",  # a fresh Python importing what a training job imports
    "startup_analysis": "s",  # ... what an analysis or figure job imports
    "teacher_bytes": "bytes",  # torch.save of the state dict
    # peak RSS of a fresh Python running that step on the device (Python, torch, the CUDA
    # context, model, optimizer, a batch): a job's host memory before its data (plan.memory)
    "teacher_step_rss": "bytes",
    "student_step_rss": "bytes",
    "ig_rss": "bytes",
    "student_bytes": "bytes",
}
RSS_SUFFIX = "_rss"  # a *_rss kind: the peak memory of its base kind's step
PLACEHOLDER = 1.0  # what Recorder answers: any positive number keeps the arithmetic defined


@dataclass(frozen=True)
class Key:
    """The settings a number was measured with; fields a kind does not depend on stay None."""

    kind: str
    width: float | None = None
    student: str | None = None  # a student id: mobilenetv2-drop5 (igkd.registry)
    tap: int | None = None  # AT: the tapped teacher block
    image_size: int | None = None
    batch: int | None = None
    threads: int | None = None
    channels_last: bool | None = None
    classes: int | None = None
    precision: str | None = None  # training steps: runtime.precision; evaluations: fp32 (igkd.training.amp)

    def __post_init__(self) -> None:
        if self.kind not in UNITS:
            raise ValueError(f"unknown calibration kind {self.kind!r}; expected one of {sorted(UNITS)}")

    def as_dict(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict) -> Key:
        """The key back from `as_dict`. A key written before students had ids names the
        paper's MobileNetV2 by its `drop`: the same network as the id mobilenetv2-drop<d>,
        so its number is read under that id; other unknown fields are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        data = dict(data)
        if "drop" in data and data.get("student") is None and data["drop"] is not None:
            from igkd.registry import mobilenet

            data["student"] = mobilenet(int(data["drop"]))
        return cls(**{k: v for k, v in data.items() if k in names})

    @property
    def unit(self) -> str:
        return UNITS[self.kind]

    def label(self) -> str:
        """One line for logs: 'student_step width=0.5 student=mobilenetv2-drop13 image_size=16 ...'."""
        return " ".join([self.kind, *(f"{k}={v}" for k, v in self.as_dict().items() if k != "kind")])


@dataclass(frozen=True)
class Entry:
    """One measured number with its provenance."""

    key: Key
    value: float
    samples: int  # timed repetitions behind the value
    when: str  # ISO time of the measurement
    where: dict  # hostname, device, device_name, torch

    def as_dict(self) -> dict:
        return {
            "key": self.key.as_dict(),
            "value": self.value,
            "unit": self.key.unit,
            "samples": self.samples,
            "when": self.when,
            "where": self.where,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Entry:
        return cls(Key.from_dict(data["key"]), float(data["value"]), int(data["samples"]), data["when"], data["where"])


class Store:
    """One device's cache file: entries by key, read on open, written after each change."""

    def __init__(self, path: str | os.PathLike, device: dict | None = None) -> None:
        self.path = Path(path)
        self.device = device or {}
        self.entries: dict[Key, Entry] = {}
        if self.path.is_file():
            self._read()

    def _read(self) -> None:
        try:
            data = json.loads(self.path.read_text())
            self.device = self.device or data.get("device", {})
            for item in data.get("entries", []):
                entry = Entry.from_dict(item)
                self.entries[entry.key] = entry
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise InputError(f"{self.path}: unreadable calibration cache ({err}); delete it to measure again") from err

    def get(self, key: Key) -> Entry | None:
        return self.entries.get(key)

    def put(self, entry: Entry) -> None:
        self.entries[entry.key] = entry
        self.save()

    def save(self) -> None:
        """Write atomically: a plan running beside a calibration never reads half a file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "format": FORMAT,
            "device": self.device,
            "entries": [e.as_dict() for e in sorted(self.entries.values(), key=lambda e: str(e.key.as_dict()))],
        }
        tmp = self.path.with_name(f".tmp.{self.path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(data, indent=1) + "\n")
        os.replace(tmp, self.path)


class Calibration:
    """The numbers a plan uses: `value(key)` of entries already measured."""

    def __init__(self, entries: dict[Key, Entry]) -> None:
        self.entries = entries

    def value(self, key: Key) -> float:
        if key not in self.entries:
            raise KeyError(f"no calibration for {key.label()}")
        return self.entries[key].value


class Recorder:
    """Answers `value(key)` with a placeholder and remembers the keys asked for."""

    def __init__(self) -> None:
        self.keys: dict[Key, None] = {}  # insertion-ordered set

    def value(self, key: Key) -> float:
        self.keys.setdefault(key)
        return PLACEHOLDER


Measure = Callable[[Key, str], tuple[float, int]]  # (key, device) -> (value, samples)


def ensure(store: Store, keys: Iterable[Key], measure: Measure, where: dict, options: EnsureOptions) -> Calibration:
    """The entries for `keys`: cached ones reused, missing ones (all with `recalibrate`)
    measured on `where['device']` and stored one by one, so an interrupted calibration
    keeps what it finished."""
    keys = list(dict.fromkeys(keys))
    todo = keys if options.recalibrate else [k for k in keys if store.get(k) is None]
    if todo and not options.can_measure:
        missing = "; ".join(k.label() for k in todo[:3]) + ("; ..." if len(todo) > 3 else "")
        raise InputError(
            f"{store.path}: {len(todo)} calibration number(s) missing for {where.get('device')}, which this machine "
            f"cannot measure ({options.why_not}): {missing}; run `igkd calibrate` with the same arguments on a "
            f"machine with that device and copy {store.path} here"
        )
    for index, key in enumerate(todo, 1):
        options.log(f"calibrate [{index}/{len(todo)}] {key.label()}")
        load = machine_load()  # before this measurement: what else keeps the machine busy
        value, samples = measure(key, where["device"])
        store.put(Entry(key, value, samples, now_iso(), {**where, **load}))
    return Calibration({k: store.get(k) for k in keys})


@dataclass(frozen=True)
class EnsureOptions:
    recalibrate: bool = False
    can_measure: bool = True
    why_not: str = ""  # with can_measure False: why (the device is not on this machine)
    log: Callable[[str], None] = print


# Seconds the CPU use of other processes is sampled before each measurement, and the
# cores they may keep busy before the numbers are flagged as measured on a busy machine.
LOAD_SAMPLE_S = 0.5
BUSY_CORES = 0.5


def machine_load() -> dict:
    """Cores busy with other work just before a measurement (this process is idle then):
    a busy machine measures slow steps. Not the load average, which counts the
    calibration's own previous measurements for a minute after they end."""
    import psutil

    busy = psutil.cpu_percent(interval=LOAD_SAMPLE_S) / 100 * (os.cpu_count() or 1)
    return {"busy_cores": round(busy, 2), "cpus": os.cpu_count()}


def now_iso() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def provenance(calibration: Calibration) -> list[str]:
    """Where the plan's numbers come from: one line per (host, device) and date range."""
    groups: dict[tuple, list[Entry]] = {}
    for entry in calibration.entries.values():
        ident = tuple(entry.where.get(k, "?") for k in ("hostname", "device", "device_name", "torch"))
        groups.setdefault(ident, []).append(entry)
    lines = []
    for (host, device, name, torch), entries in sorted(groups.items()):
        whens = [e.when for e in entries]
        first, last = min(whens), max(whens)
        span = first if first == last else f"{first} .. {last}"
        line = f"{len(whens)} number(s) measured {span} on {host}, {device} ({name}), torch {torch}"
        busy = [e.where for e in entries if e.where.get("busy_cores", 0) >= BUSY_CORES]
        if busy:
            peak = max(busy, key=lambda w: w["busy_cores"])
            line += (
                f"; {len(busy)} of them with other work running (up to {peak['busy_cores']:g} of "
                f"{peak['cpus']} CPUs busy): those may be slow, `--recalibrate` on an idle machine"
            )
        lines.append(line)
    return lines
