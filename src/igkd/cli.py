"""The `igkd` command: look at models and check data without running the workflow.

`igkd info` prints the teacher/student table (parameters, multiply-adds, compression
factors, AT tap) that the workflow would build; `igkd check-data` reads a dataset with
the workflow's own readers and summarises it, so a bad copy fails here in seconds with
the same one-line error the prepare_data job would give. Heavy libraries (torch, h5py)
are imported inside the commands, so `igkd --help` stays fast.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from igkd import __version__
from igkd.migrate import add_parser as add_migrate_command  # torch-free
from igkd.plan.runspec import add_run_arguments
from igkd.status import add_parser as add_status_command  # light: the command's work imports lazily

DEFAULT_CLASSES = 10
DEFAULT_IMAGE_SIZE = 32
EXIT_BAD_INPUT = 2  # as argparse exits on a bad command line
KINDS = ("auto", "cifar10", "imagefolder", "h5")
H5_SUFFIXES = (".h5", ".hdf5")
MEGA = 1e6
RESNET_DEPTHS = (8, 14, 20, 32, 44, 56, 110)  # `igkd info --all`: the CIFAR ResNets papers report
NUMBER = re.compile(r"-|[\d,.]+")  # cells right-aligned in tables
MINIMAL_SECTIONS = ("teacher", "precompute", "students", "runtime")  # required, filled by defaults


def main(argv: list[str] | None = None) -> int:
    """Run one sub-command; bad input gives `error: <message>` on stderr and exit status 2."""
    args = _parser().parse_args(argv)
    from igkd.runtime import CLEAN_ERRORS

    try:
        args.run(args)
    except CLEAN_ERRORS as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return EXIT_BAD_INPUT
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="igkd", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"igkd {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = commands.add_parser("info", help="print the teacher and student model table")
    info.add_argument(
        "--config",
        action="append",
        type=Path,
        metavar="YAML",
        help="config file(s), merged left to right as Snakemake does; read "
        "teacher.width, students.width, the experiments' students, dataset.image_size",
    )
    info.add_argument(
        "--classes",
        type=int,
        default=DEFAULT_CLASSES,
        help=f"number of classes (default {DEFAULT_CLASSES})",
    )
    info.add_argument(
        "--width",
        type=float,
        help="width multiplier of teacher and students (default: config, else 1.0)",
    )
    info.add_argument(
        "--image-size",
        type=int,
        help=f"input size for multiply-adds (default: config, else {DEFAULT_IMAGE_SIZE})",
    )
    info.add_argument(
        "--all",
        action="store_true",
        help="every mobilenetv2 drop 1..18 and resnet depths 8..110, not only the config's students",
    )
    info.set_defaults(run=_info)
    _add_export_command(commands)

    check = commands.add_parser("check-data", help="read a dataset as the workflow would and summarise it")
    check.add_argument(
        "path",
        type=Path,
        help="CIFAR-10 tarball or folder, image folder with train/ and test/, or a data.h5",
    )
    check.add_argument("--kind", choices=KINDS, default="auto", help="what `path` is (default: auto)")
    check.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="skip the CIFAR-10 md5 check (for a re-saved copy you trust)",
    )
    check.add_argument(
        "--image-size",
        type=int,
        default=DEFAULT_IMAGE_SIZE,
        help=f"size image-folder images are resized to (default {DEFAULT_IMAGE_SIZE})",
    )
    check.set_defaults(run=_check_data)
    _add_plan_commands(commands)
    add_status_command(commands)
    add_migrate_command(commands)
    return parser


# --------------------------------------------------------------------------- info


def all_students() -> list[str]:
    """What `igkd info --all` lists: the paper's MobileNetV2 at every drop, and the CIFAR
    ResNets distillation papers use (plugin families only when a config names them)."""
    from igkd.registry import ARCHITECTURES, mobilenet, student_id

    low, high = ARCHITECTURES["mobilenetv2"].sizes
    return [*(mobilenet(drop) for drop in range(low, high + 1)), *(student_id("resnet", d) for d in RESNET_DEPTHS)]


def _info_settings(args) -> tuple[float, float, list[str], int]:
    """(teacher width, student width, student ids, image size): --config files, else
    ./config.yaml, else the schema defaults; then flags. The students are every one an
    enabled experiment (or the controls) trains."""
    from igkd.experiments import Campaign
    from igkd.registry import student_order

    config = _load_config(args.config or [])
    teacher_width, student_width = config["teacher"]["width"], config["students"]["width"]
    students, size = Campaign.from_config(config).students(), config["dataset"]["image_size"]
    if args.width is not None:
        teacher_width = student_width = args.width
    if args.all:
        students = list(dict.fromkeys([*all_students(), *students]))
    return teacher_width, student_width, sorted(students, key=student_order), args.image_size or size


# What `snakemake` run in the current folder reads (the Snakefile's `configfile:`).
WORKFLOW_CONFIG = Path("config.yaml")


def _load_config(paths: list[Path]) -> dict:
    """The merged, validated config files; without any, ./config.yaml as `snakemake` run here
    would read it, so the table follows the user's edits, else the schema's defaults."""
    from igkd.config import load_config, validate_config
    from igkd.io import InputError

    if not paths and WORKFLOW_CONFIG.is_file():
        paths = [WORKFLOW_CONFIG]
    if not paths:
        minimal = {"dataset": {"name": "cifar10"}, **{key: {} for key in MINIMAL_SECTIONS}}
        return validate_config(minimal)
    for path in paths:
        if not path.is_file():
            raise InputError(f"{path}: config file not found")
    return load_config(*paths)


def _info(args) -> None:
    from torch import nn

    from igkd.architectures import at_tap, build_student
    from igkd.models import build_teacher, multiply_adds, n_params, paper_factor, reference_params

    def last_channels(model: nn.Module) -> int:
        """Features into the classifier: the last linear layer's inputs."""
        return [m for m in model.modules() if isinstance(m, nn.Linear)][-1].in_features

    teacher_width, student_width, students, size = _info_settings(args)
    reference = reference_params(args.classes)
    teacher = build_teacher(args.classes, teacher_width)
    teacher_params = n_params(teacher)
    print(
        f"{args.classes} classes, {size}x{size} inputs, teacher width {teacher_width}, "
        f"student width {student_width}\n"
        f"factor = params of this teacher ({teacher_params:,}) / params, "
        f"paper_factor = params of the paper's width-1.0 teacher ({reference:,}) / params"
    )
    header = ("model", "params", "MMACs", "factor", "paper_factor", "last ch", "AT module", "AT block")
    rows = [
        (
            "teacher",
            f"{teacher_params:,}",
            f"{multiply_adds(teacher, size) / MEGA:.2f}",
            "1.00",
            f"{paper_factor(teacher_params, args.classes):.2f}",
            last_channels(teacher),
            "-",
            "-",
        )
    ]
    for student in students:
        model = build_student(student, args.classes, student_width)
        params = n_params(model)
        module, block = _at_cells(student, at_tap)
        rows.append(
            (
                student,
                f"{params:,}",
                f"{multiply_adds(model, size) / MEGA:.2f}",
                f"{teacher_params / params:.2f}",
                f"{paper_factor(params, args.classes):.2f}",
                last_channels(model),
                module,
                block,
            )
        )
    _print_table(header, rows)


def _at_cells(student: str, at_tap) -> tuple[str, str]:
    """(student module, teacher block) of the student's AT tap, or '-' for a family without one."""
    try:
        module, block = at_tap(student)
    except ValueError:
        return "-", "-"
    return module, str(block)


def _print_table(header: tuple, rows: list[tuple]) -> None:
    """Columns padded to their widest cell; numeric columns right-aligned, text left-aligned."""
    cells = [tuple(str(c) for c in row) for row in [header, *rows]]
    columns = range(len(header))
    widths = [max(len(row[i]) for row in cells) for i in columns]
    numeric = [all(NUMBER.fullmatch(row[i]) for row in cells[1:]) for i in columns]
    for row in cells:
        padded = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(row, widths, numeric)]
        print("  ".join(padded).rstrip())


# --------------------------------------------------------------------------- check-data


def _kind(path: Path, kind: str) -> str:
    from igkd.io import InputError

    if kind != "auto":
        return kind
    if not path.exists():
        raise InputError(
            f"{path}: not found; expected a CIFAR-10 tarball or folder, an image "
            "folder with train/ and test/, or a data.h5"
        )
    if path.is_file() and path.suffix in H5_SUFFIXES:
        return "h5"
    if path.is_dir() and (path / "train").is_dir() and (path / "test").is_dir():
        return "imagefolder"
    return "cifar10"


def _check_data(args) -> None:
    kind = _kind(args.path, args.kind)
    if kind == "h5":
        from igkd.data.store import read_data_h5

        splits = read_data_h5(args.path)  # checks the content checksum
        _print_h5_attrs(args.path)
    elif kind == "cifar10":
        from igkd.data.cifar10 import read_cifar10

        splits = read_cifar10(args.path, verify=args.verify)
    else:
        from igkd.data.imagefolder import read_imagefolder

        splits = read_imagefolder(args.path, args.image_size)
    _print_summary(args.path, kind, splits)


def _print_h5_attrs(path: Path) -> None:
    import h5py

    with h5py.File(path, "r") as h5:
        for key in sorted(h5.attrs):
            print(f"attr {key}: {_attr_text(h5.attrs[key])}")


def _attr_text(value) -> str:
    import numpy as np

    if isinstance(value, np.ndarray):
        return ", ".join(_attr_text(v) for v in value.tolist())
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float | np.floating):
        return f"{value:.6g}"
    return str(value)


def _print_summary(path: Path, kind: str, splits) -> None:
    import numpy as np

    n_classes = len(splits.classes)
    train = np.bincount(splits.train_labels, minlength=n_classes)
    test = np.bincount(splits.test_labels, minlength=n_classes)
    height, width, channels = splits.train_images.shape[1:]
    print(f"{path}: {kind}, ok")
    print(
        f"train {len(splits.train_labels):,} images, test {len(splits.test_labels):,} images, "
        f"{height}x{width}x{channels} {splits.train_images.dtype}"
    )
    if len(splits.val_index):
        print(f"validation rows held out of train: {len(splits.val_index):,}")
    header = ("label", "class", "train", "test")
    rows = [(i, name, f"{train[i]:,}", f"{test[i]:,}") for i, name in enumerate(splits.classes)]
    print(f"{n_classes} classes:")
    _print_table(header, rows)


# --------------------------------------------------------------------------- export

EXPORT_FORMATS = ("torchscript", "onnx", "state_dict")  # igkd.training.export.FORMATS (torch-free here)


def _add_export_command(commands) -> None:
    export = commands.add_parser("export", help="write a trained student as a file that loads without igkd")
    export.add_argument("run_dir", type=Path, help="a student run folder: results/<dataset>/students/.../run<r>/")
    export.add_argument("--format", required=True, choices=EXPORT_FORMATS, help="see docs/use-a-student.md")
    export.add_argument("out", type=Path, help="the file to write")
    export.set_defaults(run=_export)


def _export(args) -> None:
    from igkd.training.export import export_command

    export_command(args)


# --------------------------------------------------------------------------- plan, calibrate


def _add_plan_commands(commands) -> None:
    """`plan` (cost of what a run has left) and `calibrate` (the timings it is based on)."""
    plan = commands.add_parser(
        "plan",
        help="estimate a run's compute hours, wall time and disk before it starts",
        description="Estimate what `snakemake` with these arguments has left to do: jobs, trainings, "
        "compute hours, wall time on the given cores/GPUs and disk, per experiment; calibrates first "
        "when .igkd/calibration has no matching timings.",
    )
    _run_arguments(plan, gpus=True)
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.add_argument(
        "--slurm-runtimes",
        action="store_true",
        help="print a SLURM runtime (minutes) and mem_mb per rule (memory: a measured peak plus the job's data)",
    )
    plan.add_argument(
        "--write-slurm-profile",
        metavar="PATH",
        help="write those runtimes and mem_mb into the set-resources of this SLURM profile (folder or its config.yaml)",
    )
    plan.set_defaults(run=_plan)
    calibrate = commands.add_parser(
        "calibrate",
        help="time training steps, evaluation, IG and start-up on the run's device (cached)",
        description="Measure what the plan's cost model needs for every job of the run (done or not) "
        "on the device it will use; numbers already in .igkd/calibration are reused.",
    )
    _run_arguments(calibrate, gpus=False)
    calibrate.set_defaults(run=_calibrate)


def _run_arguments(sub: argparse.ArgumentParser, gpus: bool) -> None:
    """The arguments a `snakemake` run takes, and the device and cache options."""
    sub.add_argument("targets", nargs="*", help="Snakemake targets (default: the workflow's default target)")
    add_run_arguments(sub)
    sub.add_argument("--cores", help="cores of the run, a number or all (default: the profile's, else this machine's)")
    if gpus:
        sub.add_argument("--gpus", type=int, help="GPUs of the run: GPUs x runtime.students_per_gpu GPU slots")
    sub.add_argument("--device", help="auto | cpu | cuda | cuda:<k> | mps (default: the config's runtime.device)")
    sub.add_argument("--recalibrate", action="store_true", help="measure again, even what the cache has")


def _plan(args) -> None:
    from igkd.plan.command import plan_command

    plan_command(args)


def _calibrate(args) -> None:
    from igkd.plan.command import calibrate_command

    calibrate_command(args)


if __name__ == "__main__":
    sys.exit(main())
