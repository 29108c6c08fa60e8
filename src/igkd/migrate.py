"""`igkd migrate`: a results folder written when students were drops, moved to student ids.

Before student ids (README "Migrating"), a run lived in students/<method>/drop<d>/ and its
metrics.json (and a sweep point's) said `drop: d`. The networks, seeds and steps are the
same under the ids (the demo gives identical numbers), so the expensive outputs can be kept:
this renames the run folders, their benchmark files and logs, writes `student` for `drop` in
their metrics, and prints the Snakemake command that forgets the old params of what it kept
(data, teacher, precompute, students, sweep points), so those are not trained again. The
tables, statistics and figures have no such record dropped: they are made again, with the
`student` column. Torch-free.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from igkd.io import InputError, read_json, write_json
from igkd.registry import mobilenet

OLD_FOLDER = re.compile(r"^drop(\d+)$")
OLD_FILE = re.compile(r"^(?P<method>.+?)_drop(?P<drop>\d+)(?P<rest>_f[\d.]+_run\d+\.(?:log|tsv))$")
# Outputs of the stages worth keeping: their params records are the ones to forget.
KEPT = ("data.h5", "teacher/*", "precompute/*.h5", "students/*/*/*/*/*", "sweeps/*/*/*/*")
KEPT_BENCHMARKS = ("prepare_data", "train_teacher", "precompute_*", "students/*", "train_sweep*")


@dataclass
class Migration:
    """What `migrate` changed: renamed paths (old -> new) and rewritten metrics files."""

    renamed: list[tuple[Path, Path]] = field(default_factory=list)
    rewritten: list[Path] = field(default_factory=list)


def migrate(results: Path, logs: Path | None = None) -> Migration:
    """Move `results` (and its `logs` folder) to the student-id layout; safe to run twice."""
    if not (results / "students").is_dir() and not (results / "sweeps").is_dir():
        raise InputError(f"{results}: no students/ or sweeps/ folder: not a results folder (results/<tag>)")
    done = Migration()
    for folder in sorted(results.glob("students/*/drop*")):
        match = OLD_FOLDER.match(folder.name)
        if match and folder.is_dir():
            target = folder.with_name(mobilenet(int(match[1])))
            if target.exists():
                raise InputError(f"{folder}: {target} exists too; move one of them away first")
            folder.rename(target)
            done.renamed.append((folder, target))
    for metrics in sorted([*results.glob("students/*/*/*/*/metrics.json"), *results.glob("sweeps/*/*/*/metrics.json")]):
        if _rewrite(metrics):
            done.rewritten.append(metrics)
    for folder in (results / "benchmarks" / "students", *([logs / "students"] if logs else [])):
        for path in sorted(folder.glob("*_drop*")) if folder.is_dir() else []:
            match = OLD_FILE.match(path.name)
            if match:
                target = path.with_name(f"{match['method']}_{mobilenet(int(match['drop']))}{match['rest']}")
                path.rename(target)
                done.renamed.append((path, target))
    return done


def _rewrite(path: Path) -> bool:
    """`drop: d` -> `student: mobilenetv2-drop<d>` in one metrics file; False if it has no drop."""
    metrics = read_json(path)
    if not isinstance(metrics, dict) or "drop" not in metrics or "student" in metrics:
        return False
    metrics["student"] = mobilenet(int(metrics.pop("drop")))
    write_json(path, metrics)
    return True


def kept_outputs(results: Path) -> list[Path]:
    """The files whose Snakemake records `snakemake --cleanup-metadata` should drop."""
    found = [p for pattern in KEPT for p in results.glob(pattern) if p.is_file()]
    found += [p for pattern in KEPT_BENCHMARKS for p in (results / "benchmarks").glob(f"{pattern}.tsv")]
    return sorted(set(found))


def migrate_command(args) -> None:
    """Print what moved and the one command left to run."""
    results = args.results
    logs = args.logs if args.logs is not None else Path("logs") / results.name
    done = migrate(results, logs if logs.is_dir() else None)
    print(f"{results}: {len(done.renamed)} folders and files renamed, {len(done.rewritten)} metrics files rewritten")
    kept = kept_outputs(results)
    print("now drop Snakemake's records of the old params of the outputs kept (data, teacher, precompute, students,")
    print("sweep points), so that they are not trained again; the tables, statistics and figures are made again:")
    print(f"  snakemake --cleanup-metadata {' '.join(str(p) for p in kept)}")


def add_parser(commands) -> None:
    """The `igkd migrate` sub-command (igkd.cli adds it)."""
    sub = commands.add_parser(
        "migrate",
        help="move a results folder written with drops to student ids (README 'Migrating')",
        description="Rename students/<method>/drop<d>/ to mobilenetv2-drop<d>/ (and their benchmark files and "
        "logs), write `student` for `drop` in their metrics, and print the snakemake --cleanup-metadata command "
        "that keeps them from retraining.",
    )
    sub.add_argument("results", type=Path, metavar="RESULTS_DIR", help="results/<tag>")
    sub.add_argument("--logs", type=Path, default=None, help="its logs folder (default: logs/<tag>)")
    sub.set_defaults(run=migrate_command)
