"""What run is being planned: the arguments a `snakemake` run takes, resolved.

`igkd plan` takes the arguments the run itself would get (config files, a profile, a
working directory, cores, GPUs) and must see the run as Snakemake will: the same merged
config (the Snakefile's config.yaml, then the profile's or the command line's files, in
order) and the same core count (which caps each job's threads).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from igkd.io import InputError

PROFILE_FILE = "config.yaml"
WORKFLOW_CONFIG = "config.yaml"  # the Snakefile's `configfile:`, relative to the working directory


@dataclass(frozen=True)
class RunSpec:
    """The run's arguments as given on the command line."""

    configfiles: tuple[str, ...] = ()
    profile: str | None = None
    directory: str | None = None
    cores: int | str | None = None  # a number or 'all'
    gpus: int | None = None
    device: str | None = None  # overrides the config's runtime.device
    targets: tuple[str, ...] = ()

    @classmethod
    def from_args(cls, args) -> RunSpec:
        """From parsed arguments of `add_run_arguments` (and those a command adds)."""
        return cls(
            configfiles=tuple(str(p) for p in args.configfile or ()),
            profile=str(args.profile) if args.profile else None,
            directory=str(args.directory) if args.directory else None,
            cores=getattr(args, "cores", None),
            gpus=getattr(args, "gpus", None),
            device=getattr(args, "device", None),
            targets=tuple(getattr(args, "targets", None) or ()),
        )


def add_run_arguments(parser) -> None:
    """Which run a command looks at: its config files, profile and working directory, as
    `snakemake` takes them (igkd plan, calibrate, status)."""
    parser.add_argument("--configfile", nargs="+", type=Path, metavar="F", help="config files, as for snakemake")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="Snakemake profile folder (configfile, cores)")
    parser.add_argument("--directory", type=Path, metavar="DIR", help="working directory, as for snakemake")


@dataclass(frozen=True)
class ResolvedRun:
    """The run as Snakemake will see it."""

    spec: RunSpec
    workdir: Path
    config_files: tuple[Path, ...]
    config: dict
    cores: int
    requested_device: str  # --device, else runtime.device
    gpu_slots: int | None  # GPU slots to schedule on (GPUs x students_per_gpu); None: not limited
    profile: dict = field(default_factory=dict)

    def path(self, relative: str | os.PathLike) -> Path:
        """A workflow path (results/..., the external root) as seen from here."""
        return self.workdir / relative


def read_profile(folder: str | os.PathLike) -> dict:
    """The profile's settings (its config.yaml), as Snakemake reads them."""
    path = Path(folder) / PROFILE_FILE if Path(folder).is_dir() else Path(folder)
    if not path.is_file():
        raise InputError(f"--profile {folder}: no {PROFILE_FILE} there (a Snakemake profile is a folder with one)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping of Snakemake options")
    return data


def resolve(spec: RunSpec) -> ResolvedRun:
    """Config files, merged config, cores and GPU slots of the run `spec` describes."""
    from igkd.config import load_config

    profile = read_profile(spec.profile) if spec.profile else {}
    workdir = Path(spec.directory or profile.get("directory") or ".")
    if not workdir.is_dir():
        raise InputError(f"--directory {workdir}: no such folder")
    given = [Path(p) for p in spec.configfiles or _as_list(profile.get("configfile") or profile.get("configfiles"))]
    for path in given:
        if not path.is_file():
            raise InputError(f"config file {path}: not found")
    base = workdir / WORKFLOW_CONFIG
    first_is_base = bool(given) and base.is_file() and given[0].resolve() == base.resolve()
    files = ([base] if base.is_file() and not first_is_base else []) + given
    if not files:
        raise InputError(f"no config: neither {workdir / WORKFLOW_CONFIG} nor --configfile / the profile's configfile")
    config = load_config(*files)
    device = spec.device or config["runtime"]["device"]
    return ResolvedRun(
        spec=spec,
        workdir=workdir,
        config_files=tuple(files),
        config=config,
        cores=_cores(spec.cores, profile),
        requested_device=device,
        gpu_slots=_gpu_slots(spec.gpus, profile, config),
        profile=profile,
    )


def _as_list(value) -> list[str]:
    if value is None:
        return []
    return [str(value)] if isinstance(value, str) else [str(v) for v in value]


def _cores(cores: int | str | None, profile: dict) -> int:
    """--cores, else the profile's `cores` (a number or `all`), else this machine's CPUs."""
    value = cores if cores is not None else profile.get("cores")
    if value in (None, "all"):
        return os.cpu_count() or 1
    try:
        value = int(value)
    except (TypeError, ValueError) as err:
        raise InputError(f"cores: expected a number or 'all', got {value!r}") from err
    if value < 1:
        raise InputError(f"cores: expected at least 1, got {value}")
    return value


def _gpu_slots(gpus: int | None, profile: dict, config: dict) -> int | None:
    """GPU slots the scheduler may fill: --gpus x runtime.students_per_gpu, else the profile's
    `resources: gpu=N`, else None (GPU slots do not limit the run)."""
    if gpus is not None:
        if gpus < 0:
            raise InputError(f"--gpus: expected 0 or more, got {gpus}")
        return gpus * int(config["runtime"]["students_per_gpu"])
    resources = profile.get("resources") or {}
    if isinstance(resources, str):
        resources = [resources]
    if isinstance(resources, list):
        resources = dict(item.split("=", 1) for item in resources if "=" in str(item))
    value = resources.get("gpu") if isinstance(resources, dict) else None
    return int(value) if value is not None else None


def snakemake_args(run: ResolvedRun, *, forceall: bool = False) -> list[str]:
    """The dry run's arguments: the run's own, plus what makes it a listing. Targets come
    first: `--configfile` takes every word after it."""
    spec = run.spec
    args = ["-n", "--nolock", "--cores", str(run.cores)]
    if spec.profile:
        args += ["--profile", spec.profile]
    if spec.directory:
        args += ["--directory", spec.directory]
    if spec.configfiles:
        args += ["--configfile", *spec.configfiles]
    if run.gpu_slots is not None:
        args += ["--resources", f"gpu={run.gpu_slots}"]
    if forceall:
        args.append("--forceall")
    return [*spec.targets, *args]
