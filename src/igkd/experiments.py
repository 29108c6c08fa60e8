"""The paper's experiments and the student runs they ask for.

The paper ran a handful of experiments, not one grid: an ablation of the 8 methods (10
full-set runs at drop 5), Monte Carlo runs of 4 methods on 80 % subsets, and a
compression sweep (4 methods at 8 drops, one run each). Config `experiments` names each
with its methods, students, runs and training fraction; `students` holds the one recipe
they share. A student is an id, architecture plus size (`mobilenetv2-drop5`: the paper's
MobileNetV2 without its last 5 blocks; igkd.registry).

A trained student is identified by what determines it, not by the experiment that asked
for it: `StudentRun` (method, student, fraction, run and the recipe keys its method reads).
Its folder, its rule params, its checkpoint tag and its row in runs.csv all come from
that one frozen object, so two experiments that need the same student share one
training, and a recipe key a method does not read (KD's alpha for a plain Student) does
not retrain it. Torch-free: the workflow builds its job list from this module on every
dry run.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from igkd import registry
from igkd.training.methods import get_method, plugin_fingerprints

# Experiments whose students are distill_student jobs, in the order docs/experiments.md lists them.
STUDENT_EXPERIMENTS = ("ablation", "montecarlo", "compression", "grid")
# Every experiment of the paper: each is a Snakemake target (`snakemake --cores N ablation`).
ALL_EXPERIMENTS = (*STUDENT_EXPERIMENTS[:3], "kd_grid", "overlay_p", "controls", "timing", "external")


def fraction_text(fraction: float) -> str:
    """The training fraction as it appears in paths: 1 and 1.0 -> '1.0', 0.8 -> '0.8'."""
    return repr(float(fraction))


@dataclass(frozen=True)
class KD:
    alpha: float
    temperature: float


@dataclass(frozen=True)
class IGOverlay:
    attribution: str  # the precompute file feeding the overlay
    p: float
    power_min: float
    power_max: float
    blend: float
    above_tolerance: str


@dataclass(frozen=True)
class StudentRecipe:
    """config `students`: how every student trains, whatever experiment asks for it."""

    seed_offset: int
    exclude_val: bool
    width: float
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    crop_padding: int
    flip: bool
    normalize: Mapping | None  # {mean, std} on the [0,1] scale, or None
    eval_every: int
    control_seed: int
    kd: KD
    ig: IGOverlay
    gamma: float  # attention-transfer weight (students.at.gamma)
    losses: Mapping = dataclasses.field(default_factory=dict)  # students.losses: plugin loss term -> weight

    @classmethod
    def from_config(cls, students: Mapping) -> StudentRecipe:
        return cls(
            seed_offset=int(students["seed_offset"]),
            exclude_val=bool(students["exclude_val"]),
            width=float(students["width"]),
            epochs=int(students["epochs"]),
            batch_size=int(students["batch_size"]),
            lr=float(students["lr"]),
            weight_decay=float(students["weight_decay"]),
            crop_padding=int(students["crop_padding"]),
            flip=bool(students["flip"]),
            normalize=_plain(students.get("normalize")),
            eval_every=int(students["eval_every"]),
            control_seed=int(students["control_seed"]),
            kd=KD(float(students["kd"]["alpha"]), float(students["kd"]["temperature"])),
            ig=IGOverlay(
                attribution=students["ig"]["attribution"],
                p=float(students["ig"]["p"]),
                power_min=float(students["ig"]["power_min"]),
                power_max=float(students["ig"]["power_max"]),
                blend=float(students["ig"]["blend"]),
                above_tolerance=students["ig"].get("above_tolerance", "use"),
            ),
            gamma=float(students["at"]["gamma"]),
            losses={str(k): float(v) for k, v in (students.get("losses") or {}).items()},
        )

    def replace(self, **changes) -> StudentRecipe:
        return dataclasses.replace(self, **changes)

    def settings_for(self, method_name: str) -> dict:
        """The recipe keys a run of `method_name` reads, as plain data (its rule params and
        checkpoint tag): a Student run does not carry KD's alpha, so changing it does not
        retrain the Student."""
        method = get_method(method_name)
        settings = {
            "seed_offset": self.seed_offset,
            "exclude_val": self.exclude_val,
            "width": self.width,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "crop_padding": self.crop_padding,
            "flip": self.flip,
            "normalize": self.normalize,
            "eval_every": self.eval_every,
        }
        if method.kd:
            settings["kd"] = dataclasses.asdict(self.kd)
        if method.ig:
            settings["ig"] = dataclasses.asdict(self.ig)
        if method.at:
            settings["at"] = {"gamma": self.gamma}
        if method.shuffle_logits or method.shuffle_maps:
            settings["control_seed"] = self.control_seed
        if method.losses:
            settings["losses"] = {term: self.loss_weight(term) for term in method.losses}
        return settings

    def loss_weight(self, term: str) -> float:
        """students.losses.<term>, else the weight the loss registered with."""
        return float(self.losses[term]) if term in self.losses else registry.loss(term).weight

    @classmethod
    def from_settings(cls, settings: Mapping) -> StudentRecipe:
        """The recipe back from `settings_for` (keys a method does not read get neutral
        values it never looks at)."""
        kd = settings.get("kd") or {"alpha": 0.0, "temperature": 1.0}
        ig = settings.get("ig") or {
            "attribution": "ig",
            "p": 0.0,
            "power_min": 1.0,
            "power_max": 1.0,
            "blend": 0.0,
            "above_tolerance": "use",
        }
        return cls.from_config(
            {
                **{k: v for k, v in settings.items() if k not in ("kd", "ig", "at")},
                "losses": settings.get("losses") or {},
                "control_seed": settings.get("control_seed", 0),
                "kd": kd,
                "ig": ig,
                "at": settings.get("at") or {"gamma": 0.0},
            }
        )


def _plain(value):
    """A JSON-plain copy (YAML mappings and lists as dicts and lists)."""
    return None if value is None else json.loads(json.dumps(value))


@dataclass(frozen=True)
class StudentRun:
    """One student: what determines it, and everything derived from that."""

    method: str
    student: str  # an id: mobilenetv2-drop5 (igkd.registry)
    fraction: float
    run: int
    recipe: StudentRecipe

    def __post_init__(self) -> None:
        object.__setattr__(self, "fraction", float(self.fraction))
        object.__setattr__(self, "student", str(self.student))
        object.__setattr__(self, "run", int(self.run))

    @property
    def seed(self) -> int:
        return self.recipe.seed_offset + self.run

    @property
    def key(self) -> tuple[str, str, str, int]:
        """What tells two runs apart within one campaign (one recipe)."""
        return (self.method, self.student, fraction_text(self.fraction), self.run)

    def folder(self, results: str) -> str:
        return f"{results}/students/{self.method}/{self.student}/f{fraction_text(self.fraction)}/run{self.run}"

    def plugins(self) -> dict:
        """Fingerprints of the plugin code this run uses (its architecture, method and loss
        terms; {} for igkd's own): part of params, so editing that code reruns it."""
        arch, _ = registry.parse_student(self.student)
        found = registry.plugin_fingerprints([("student", arch)])
        return {**found, **plugin_fingerprints(self.method)}

    def params(self) -> dict:
        """What determines the run, as plain data: the rule's params (a change reruns
        exactly the runs it touches), the checkpoint tag, the identity in metrics.json."""
        params = {
            "method": self.method,
            "student": self.student,
            "fraction": self.fraction,
            "run": self.run,
            "seed": self.seed,
            "recipe": self.recipe.settings_for(self.method),
        }
        plugins = self.plugins()
        return {**params, "plugins": plugins} if plugins else params

    @classmethod
    def from_params(cls, params: Mapping) -> StudentRun:
        recipe = StudentRecipe.from_settings(params["recipe"])
        return cls(params["method"], params["student"], params["fraction"], params["run"], recipe)

    def record(self) -> dict:
        """Its identity columns in metrics.json and runs.csv."""
        return {
            "method": self.method,
            "control": get_method(self.method).control,
            "student": self.student,
            "fraction": self.fraction,
            "run": self.run,
            "seed": self.seed,
            "epochs": self.recipe.epochs,
        }

    def __str__(self) -> str:
        return f"{self.method} {self.student} fraction {fraction_text(self.fraction)} run {self.run}"


@dataclass(frozen=True)
class Experiment:
    """config experiments.<name>: methods x students x runs, each run on `fraction` of the training rows."""

    name: str
    enabled: bool
    methods: tuple[str, ...]
    students: tuple[str, ...]  # ids: mobilenetv2-drop5
    runs: int
    fraction: float

    @classmethod
    def from_config(cls, name: str, section: Mapping) -> Experiment:
        return cls(
            name,
            bool(section.get("enabled", True)),
            tuple(section["methods"]),
            tuple(str(s) for s in section["students"]),
            int(section["runs"]),
            float(section["fraction"]),
        )

    def student_runs(self, recipe: StudentRecipe) -> list[StudentRun]:
        return [
            StudentRun(method, student, self.fraction, run, recipe)
            for method in self.methods
            for student in self.students
            for run in range(self.runs)
        ]


@dataclass(frozen=True)
class Controls:
    """config controls, paired with one experiment's runs: the controls train its student at
    its fraction with the same seeds, so each control run has a paired run of every method it
    is compared with."""

    methods: tuple[str, ...]
    compare_with: tuple[str, ...]
    experiment: str
    student: str
    fraction: float
    runs: int

    def student_runs(self, recipe: StudentRecipe) -> list[StudentRun]:
        return [
            StudentRun(method, self.student, self.fraction, run, recipe)
            for method in (*self.methods, *self.compare_with)
            for run in range(self.runs)
        ]

    def comparison(self) -> dict:
        """What the controls' statistics depend on (compare_controls' params)."""
        return {"methods": list(self.methods), "compare_with": list(self.compare_with), "student": self.student}


@dataclass(frozen=True)
class Campaign:
    """Every student the config asks for, built once from the validated config."""

    recipe: StudentRecipe
    experiments: dict[str, Experiment]  # every configured student experiment, in config order
    controls: Controls | None  # None when controls.methods is empty

    @classmethod
    def from_config(cls, config: Mapping) -> Campaign:
        recipe = StudentRecipe.from_config(config["students"])
        experiments = {name: Experiment.from_config(name, section) for name, section in config["experiments"].items()}
        controls = None
        section = config.get("controls") or {}
        if section.get("methods"):
            paired = experiments[section["experiment"]]
            student = section.get("student")
            controls = Controls(
                tuple(section["methods"]),
                tuple(section["compare_with"]),
                paired.name,
                str(paired.students[0] if student is None else student),
                paired.fraction,
                int(section["runs"]),
            )
        return cls(recipe, experiments, controls)

    @property
    def enabled(self) -> list[str]:
        """The experiments in the default target (`all`); a disabled one still runs when asked for by name."""
        return [name for name, experiment in self.experiments.items() if experiment.enabled]

    def runs(self, experiment: str) -> list[StudentRun]:
        return self.experiments[experiment].student_runs(self.recipe)

    def all_runs(self) -> list[StudentRun]:
        """Each student of the default target once, in the order the enabled experiments
        (then the controls) ask for them."""
        seen: dict[tuple, StudentRun] = {}
        for name in self.enabled:
            for run in self.runs(name):
                seen.setdefault(run.key, run)
        for run in self.control_runs():
            seen.setdefault(run.key, run)
        return list(seen.values())

    def control_runs(self) -> list[StudentRun]:
        return self.controls.student_runs(self.recipe) if self.controls else []

    def run(self, method: str, student: str, fraction, run) -> StudentRun:
        return StudentRun(method, student, float(fraction), int(run), self.recipe)

    def owner_index(self, also: Iterable[str] = ()) -> dict[tuple, list[str]]:
        """run key -> the experiments that ask for that student (the enabled ones, then the
        disabled ones named in `also`, in config order) and `controls`; built in one pass."""
        asked = [*self.enabled, *(n for n in self.experiments if n in also and n not in self.enabled)]
        index: dict[tuple, list[str]] = {}
        for name in asked:
            for run in self.runs(name):
                index.setdefault(run.key, []).append(name)
        for run in self.control_runs():
            owners = index.setdefault(run.key, [])
            if "controls" not in owners:
                owners.append("controls")
        return index

    def owners(self, run: StudentRun) -> list[str]:
        """The experiments (and `controls`) that ask for `run`."""
        return self.owner_index().get(run.key, [])

    def students(self) -> list[str]:
        """Every student id an enabled experiment or the controls train, sorted by
        architecture and size."""
        students = {s for name in self.enabled for s in self.experiments[name].students}
        if self.controls:
            students.add(self.controls.student)
        return sorted(students, key=registry.student_order)


def folders(runs: Iterable[StudentRun], results: str) -> list[str]:
    return [run.folder(results) for run in runs]
