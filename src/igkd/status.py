"""`igkd status`: how far a run is, read from its results folder while it runs.

Per stage and experiment of the config (the teacher, the precomputed attributions, each
enabled student experiment, the controls, the two sweeps) it counts the runs done,
running and to do, and estimates the time left from the measured durations of the runs
already finished. It reads files only: no Snakemake, no torch.

- done: the run's output exists (metrics.json; a precompute's .h5).
- running: not done, and a file its job writes while it runs changed recently: its log
  (one line per epoch), its checkpoint.pt (after every epoch), a precompute's .partial
  (after every chunk) or its run folder (made when the job starts); recently = within
  `active_minutes`, or twice its last epoch's time when an epoch takes longer. A job that
  trains several runs in turn (a sweep job of grouping `sweep`) runs only its first
  unfinished one. Files are the signal, not Snakemake's own markers: they work for local
  and cluster runs alike, and a killed job stops counting as running once they go quiet.
- to do: the rest; `interrupted` counts those a killed job left a checkpoint.pt or
  .partial for, from which the next run resumes.

Time left of a row: its median seconds per finished run (runtime.json of a student or the
teacher, the Snakemake benchmark of a sweep job or a precompute) x (its runs to do + the
part of each running run not yet trained, from its log's last `epoch k/N`) / `jobs`. A
row with no finished run of its own takes the median of its kind (every finished student
run, or sweep point); a running run of a row with no median, its log's last epoch time x
the epochs it has left. The total counts a student several experiments share once.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from statistics import median

from igkd.training.progress import EpochMark, format_duration, last_epoch

ACTIVE_MINUTES = 30.0  # a job whose files changed within this long is running
EPOCHS_OF_SILENCE = 2.0  # ... or within this many of its epochs, when an epoch takes longer
DONE, RUNNING, TO_DO = "done", "running", "to do"
# the kinds a row's median falls back on: a row's own kind only, but experiments share students
STUDENTS, SWEEPS = "student runs", "sweep points"


@dataclass(frozen=True)
class Unit:
    """One run the status counts: a student, a sweep point, the teacher or a precompute file."""

    key: tuple  # what it trains: a student several experiments ask for is one unit
    output: Path  # exists once its job finished
    timing: Path  # runtime.json or a Snakemake benchmark (.tsv) with the job's measured seconds
    share: int = 1  # runs the timed job made (a sweep job's points): its seconds are split evenly
    log: Path | None = None
    traces: tuple[Path, ...] = ()  # what else its job writes while it runs
    resumable: Path | None = None  # checkpoint.pt or .partial: a killed job resumes from it


@dataclass(frozen=True)
class Seen:
    """A unit as its files show it now."""

    unit: Unit
    state: str  # done | running | to do
    seconds: float | None = None  # measured duration (done)
    mark: EpochMark | None = None  # the last epoch line of its log (running)
    interrupted: bool = False  # to do, with a checkpoint or .partial to resume from


@dataclass(frozen=True)
class Row:
    """One stage or experiment: its counts and time left (None: no run timed to base it on)."""

    name: str
    runs: int
    done: int
    running: int
    to_do: int
    interrupted: int
    seconds_left: float | None
    basis: str


@dataclass(frozen=True)
class Status:
    results: Path
    rows: tuple[Row, ...]
    total: Row
    jobs: int
    unknown: tuple[str, ...]  # rows with work left but no time estimate (not in the total's time)

    @property
    def started(self) -> bool:
        return any(row.done or row.running or row.interrupted for row in self.rows)


@dataclass(frozen=True)
class Layout:
    """Where a run's files are: results/<name>, its benchmarks, and logs/<name> beside results/."""

    results: Path

    @property
    def bench(self) -> Path:
        return self.results / "benchmarks"

    @property
    def logs(self) -> Path:
        return self.results.parent.parent / "logs" / self.results.name


# --------------------------------------------------------------------------- the runs


def campaign_rows(config: Mapping, results: Path) -> dict[str, tuple[str, list[Unit]]]:
    """row name -> (the kind its median falls back on, its units), in the order printed:
    teacher, precompute, the enabled student experiments in config order, controls, sweeps."""
    from igkd.experiments import Campaign

    where = Layout(Path(results))
    campaign = Campaign.from_config(config)
    rows: dict[str, tuple[str, list[Unit]]] = {
        "teacher": ("teacher", [_teacher(where)]),
        "precompute": ("precompute", [_precompute(where, name) for name in precompute_files(config, campaign)]),
    }
    for name in campaign.enabled:
        rows[name] = (STUDENTS, [_student(where, run) for run in campaign.runs(name)])
    if campaign.controls:
        rows["controls"] = (STUDENTS, [_student(where, run) for run in campaign.control_runs()])
    for row, sweep in (("kd_grid", "kd"), ("overlay_p", "overlay_p")):
        rows[row] = (SWEEPS, _sweep(where, config["sweeps"], sweep))
    return rows


def precompute_files(config: Mapping, campaign) -> list[str]:
    """Stems of the precompute files the run makes: precompute.attributions, and those the
    students read (the controls' shuffled, reference-defect and random files), as the
    workflow's student_precompute names them."""
    from igkd.training.methods import precompute_stem

    runs = [run for name in campaign.enabled for run in campaign.runs(name)] + list(campaign.control_runs())
    default = config["students"]["ig"]["attribution"]
    stems = [precompute_stem(run.method, default) for run in runs]
    return list(dict.fromkeys([*config["precompute"]["attributions"], *(s for s in stems if s)]))


def _teacher(where: Layout) -> Unit:
    folder = where.results / "teacher"
    checkpoint = folder / "checkpoint.pt"
    return Unit(
        ("teacher",),
        folder / "metrics.json",
        folder / "runtime.json",
        log=where.logs / "train_teacher.log",
        traces=(folder, checkpoint),
        resumable=checkpoint,
    )


def _precompute(where: Layout, attribution: str) -> Unit:
    output = where.results / "precompute" / f"{attribution}.h5"
    partial = output.with_name(output.name + ".partial")
    return Unit(
        ("precompute", attribution),
        output,
        where.bench / f"precompute_{attribution}.tsv",
        log=where.logs / f"precompute_{attribution}.log",
        traces=(partial,),
        resumable=partial,
    )


def _student(where: Layout, run) -> Unit:
    from igkd.experiments import fraction_text

    folder = Path(run.folder(str(where.results)))
    checkpoint = folder / "checkpoint.pt"
    name = f"{run.method}_{run.student}_f{fraction_text(run.fraction)}_run{run.run}"
    return Unit(
        ("student", *run.key),
        folder / "metrics.json",
        folder / "runtime.json",
        log=where.logs / "students" / f"{name}.log",
        traces=(folder, checkpoint),
        resumable=checkpoint,
    )


def _sweep(where: Layout, sweeps: Mapping, sweep: str) -> list[Unit]:
    """One unit per grid point and run; with grouping `sweep` one job (one log and
    benchmark) trains them all, in this order."""
    from igkd.analysis.sweeps import grid_points

    points = [(point, run) for point in grid_points(sweeps, sweep) for run in range(sweeps["runs"])]
    whole = sweeps["grouping"] == "sweep"
    units = []
    for point, run in points:
        folder = where.results / "sweeps" / sweep / point / f"run{run}"
        stem = sweep if whole else f"{sweep}_{point}_run{run}"
        units.append(
            Unit(
                ("sweep", sweep, point, run),
                folder / "metrics.json",
                where.bench / "sweeps" / f"{stem}.tsv",
                share=len(points) if whole else 1,
                log=where.logs / "sweeps" / f"{stem}.log",
                traces=(folder,),
            )
        )
    return units


# --------------------------------------------------------------------------- what the files say


def measured_seconds(unit: Unit) -> float | None:
    """The finished job's wall time for this unit: runtime.json's `seconds`, or the `s`
    column of a Snakemake benchmark, split over the runs the job made; None if unreadable."""
    try:
        if unit.timing.suffix == ".json":
            seconds = float(json.loads(unit.timing.read_text())["seconds"])
        else:
            with open(unit.timing, newline="") as fh:
                seconds = float(next(csv.DictReader(fh, delimiter="\t"))["s"])
    except (OSError, ValueError, KeyError, TypeError, StopIteration):
        return None
    return seconds / unit.share


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _read_mark(log: Path | None) -> EpochMark | None:
    if log is None:
        return None
    try:
        return last_epoch(log.read_text(errors="replace"))
    except OSError:
        return None


def observe(unit: Unit, now: float, active_minutes: float = ACTIVE_MINUTES) -> Seen:
    """What `unit`'s files say now (see the module docstring for the rules)."""
    if unit.output.exists():
        return Seen(unit, DONE, seconds=measured_seconds(unit))
    mark = _read_mark(unit.log)
    window = active_minutes * 60
    if mark is not None and mark.seconds:
        window = max(window, EPOCHS_OF_SILENCE * mark.seconds)
    changed = [t for t in (_mtime(p) for p in (*((unit.log,) if unit.log else ()), *unit.traces)) if t is not None]
    if changed and now - max(changed) <= window:
        return Seen(unit, RUNNING, mark=mark)
    return Seen(unit, TO_DO, interrupted=bool(unit.resumable and unit.resumable.exists()))


def observe_all(units: Iterable[Unit], now: float, active_minutes: float = ACTIVE_MINUTES) -> list[Seen]:
    """`observe` for each unit, where a job that trains several units in turn (one log for
    all) runs only its first unfinished one."""
    seen, busy = [], set()
    for unit in units:
        state = observe(unit, now, active_minutes)
        if state.state == RUNNING and unit.log is not None:
            if unit.log in busy:
                state = Seen(unit, TO_DO)
            busy.add(unit.log)
        seen.append(state)
    return seen


# --------------------------------------------------------------------------- time left


def remaining_seconds(seen: Seen, per_run: float | None) -> float | None:
    """Seconds `seen` has left: 0 when done, `per_run` to do, the untrained part of
    `per_run` when running (or its last epoch's time x the epochs left); None: no basis."""
    if seen.state == DONE:
        return 0.0
    if seen.state == TO_DO:
        return per_run
    mark = seen.mark
    if per_run is not None:
        return per_run * (1.0 - mark.fraction_done) if mark else per_run
    if mark is not None and mark.seconds:
        return mark.seconds * max(mark.epochs - mark.epoch, 0)
    return None


def _basis(own: list[float], fallback: list[float], kind: str) -> tuple[float | None, str]:
    """The seconds per run a row's estimate rests on, and the words saying so."""
    if own:
        return median(own), f"median {format_duration(median(own))} per run of its {len(own)} done"
    if fallback:
        return median(fallback), f"median {format_duration(median(fallback))} per run of {len(fallback)} done {kind}"
    return None, "no run done yet to time"


def summarize(
    rows: Mapping[str, tuple[str, list[Unit]]], results: Path, *, jobs: int = 1, now: float, active_minutes: float
) -> Status:
    """The Status of `rows` (campaign_rows) as their files are at time `now`."""
    jobs = max(int(jobs), 1)
    seen = {name: observe_all(units, now, active_minutes) for name, (_, units) in rows.items()}
    timed: dict[str, dict[tuple, float]] = {}  # kind -> each timed unit once (rows share students)
    for name, (kind, _) in rows.items():
        timed.setdefault(kind, {}).update((s.unit.key, s.seconds) for s in seen[name] if s.seconds is not None)
    out, unknown, left, counted = [], [], {}, {}
    for name, (kind, _) in rows.items():
        own = [s.seconds for s in seen[name] if s.seconds is not None]
        per_run, basis = _basis(own, list(timed[kind].values()), kind)
        remaining = [remaining_seconds(s, per_run) for s in seen[name]]
        row_left = None if any(r is None for r in remaining) else sum(remaining) / jobs
        out.append(_row(name, seen[name], row_left, basis if any(s.state != DONE for s in seen[name]) else "all done"))
        if row_left is None:
            unknown.append(name)
        for s, r in zip(seen[name], remaining):
            counted.setdefault(s.unit.key, s)
            left.setdefault(s.unit.key, r)
    known = [r for r in left.values() if r is not None]
    total_basis = f"the rows' seconds / {jobs} job{'s' * (jobs != 1)}"
    total = _row("total", list(counted.values()), sum(known) / jobs, total_basis)
    return Status(Path(results), tuple(out), total, jobs, tuple(unknown))


def _row(name: str, seen: list[Seen], seconds_left: float | None, basis: str) -> Row:
    count = {state: sum(s.state == state for s in seen) for state in (DONE, RUNNING, TO_DO)}
    interrupted = sum(s.interrupted for s in seen)
    return Row(name, len(seen), count[DONE], count[RUNNING], count[TO_DO], interrupted, seconds_left, basis)


def status(
    config: Mapping, results: Path, *, jobs: int = 1, active_minutes: float = ACTIVE_MINUTES, now: float | None = None
) -> Status:
    """How far the run of `config` writing to `results` is, at time `now` (default: now)."""
    rows = campaign_rows(config, Path(results))
    return summarize(
        rows, Path(results), jobs=jobs, now=time.time() if now is None else now, active_minutes=active_minutes
    )


# --------------------------------------------------------------------------- output


def _left_text(row: Row) -> str:
    if row.seconds_left is None:
        return "?"
    return "-" if row.done == row.runs else f"~{format_duration(row.seconds_left)}"


def format_status(status: Status) -> str:
    """The status as printed: one line when nothing has started, else a table and notes."""
    where = status.results
    if not status.started:
        what = "no such folder" if not where.is_dir() else "nothing done or running yet"
        return f"{where}: {what}; {status.total.to_do} runs to do ({', '.join(_counts(status))})"
    header = ("experiment", "runs", "done", "running", "to do", "time left", "basis")
    cells = [(r.name, r.runs, r.done, r.running, r.to_do, _left_text(r), r.basis) for r in (*status.rows, status.total)]
    lines = [f"{where}: {status.total.done} of {status.total.runs} runs done, {status.total.running} running"]
    lines += _table(header, cells)
    interrupted = [f"{r.name} {r.interrupted}" for r in status.rows if r.interrupted]
    if interrupted:
        lines.append(f"interrupted (to do, will resume from a checkpoint): {', '.join(interrupted)}")
    if status.unknown:
        lines.append(f"no estimate yet for {', '.join(status.unknown)}: not in the total's time left")
    lines.append(
        "a student several experiments ask for counts in each of their rows, once in the total; "
        f"the time left assumes {status.jobs} job{'s' * (status.jobs != 1)} kept busy (--jobs)"
    )
    return "\n".join(lines)


def _counts(status: Status) -> list[str]:
    return [f"{row.name} {row.to_do}" for row in status.rows]


def _table(header: tuple, rows: list[tuple]) -> list[str]:
    """Columns padded to their widest cell: numbers right-aligned, text left-aligned."""
    cells = [tuple(str(c) for c in row) for row in (header, *rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    numeric = [all(isinstance(row[i], int) for row in rows) for i in range(len(header))]
    return [
        "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric)).rstrip()
        for row in cells
    ]


# --------------------------------------------------------------------------- the command


def add_parser(commands) -> None:
    """The `igkd status` sub-command (igkd.cli adds it)."""
    from igkd.plan.runspec import add_run_arguments

    sub = commands.add_parser(
        "status",
        help="runs done / running / to do per experiment, and the time left",
        description="Count each stage's and experiment's runs done, running and to do in a results folder, "
        "and estimate the time left from the runs already finished (docs/progress.md).",
    )
    sub.add_argument(
        "results", nargs="?", type=Path, metavar="RESULTS_DIR", help="default: results/<dataset> of the config"
    )
    add_run_arguments(sub)
    sub.add_argument("--jobs", type=int, default=1, help="jobs running side by side, to divide the time by (default 1)")
    sub.add_argument(
        "--active-minutes",
        type=float,
        default=ACTIVE_MINUTES,
        help=f"a run whose files changed within this long is running (default {ACTIVE_MINUTES:g})",
    )
    sub.set_defaults(run=status_command)


def status_command(args) -> None:
    """Print the status of the run the config (./config.yaml, --configfile, --profile) describes."""
    from igkd.io import InputError
    from igkd.plan.build import results_dir
    from igkd.plan.runspec import RunSpec, resolve

    if args.jobs < 1:
        raise InputError(f"--jobs: expected 1 or more, got {args.jobs}")
    run = resolve(RunSpec.from_args(args))
    results = args.results or results_dir(run)
    print(format_status(status(run.config, results, jobs=args.jobs, active_minutes=args.active_minutes)))
