"""Config validation: JSON schema (with defaults filled in) plus the cross-key rules a
schema cannot say, with errors that name the offending key."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator, validators

from igkd import plugins, registry
from igkd.folders import tag_problem
from igkd.io import InputError
from igkd.training.methods import get_method

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def _with_defaults(validator_class):
    """A validator that fills in each property's schema default before checking it."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


DefaultingValidator = _with_defaults(Draft202012Validator)


def load_schema(path: str | os.PathLike = SCHEMA) -> dict:
    with open(path) as fh:
        return yaml.safe_load(fh)


# students.* keys that became experiments.<name>.* (igkd.experiments): an old config gets
# one line saying where they went instead of "additional properties are not allowed".
MOVED_TO_EXPERIMENTS = ("methods", "drops", "runs", "fraction")


def validate_config(
    config: dict, schema_path: str | os.PathLike = SCHEMA, config_dirs: tuple[str | os.PathLike, ...] = ()
) -> dict:
    """Return a validated copy of `config` with defaults filled; raise InputError naming the
    key. Loads its plugins first (files looked up in `config_dirs`, then the working
    folder; `plugins` comes back resolved), so the names they register are valid."""
    config = copy.deepcopy(config)
    moved = [k for k in MOVED_TO_EXPERIMENTS if k in (config.get("students") or {})]
    if moved:
        keys = ", ".join(f"students.{k}" for k in moved)
        raise InputError(
            f"invalid config:\n  {keys}: moved to experiments.<name>.{{methods, students, runs, fraction}} "
            "(ablation, montecarlo, compression, grid; docs/experiments.md)"
        )
    renamed = _renamed_drop_keys(config)
    if renamed:
        raise InputError("invalid config:\n" + "\n".join(f"  {line}" for line in renamed))
    errors = sorted(DefaultingValidator(load_schema(schema_path)).iter_errors(config), key=lambda e: list(e.path))
    if errors:
        lines = [f"  {_key(e)}: {_message(e)}" for e in errors]
        raise InputError("invalid config:\n" + "\n".join(lines))
    config["plugins"] = plugins.resolve_entries(config["plugins"], config_dirs)
    plugins.load(config["plugins"])
    _check_names(config)
    _check_cross_keys(config)
    return config


# Keys that named a MobileNetV2 drop before students became ids (README "Migrating").
DROP_KEYS = ("controls", "sweeps", "figures.mc_hist", "figures.attention", "figures.power")


def _renamed_drop_keys(config: dict) -> list[str]:
    """One line per `drops` / `drop` key of the old layout, with the key that replaced it."""
    lines = []
    for name, section in (config.get("experiments") or {}).items():
        if isinstance(section, dict) and "drops" in section:
            ids = ", ".join(registry.mobilenet(d) for d in section["drops"] if isinstance(d, int))
            lines.append(f"experiments.{name}.drops: renamed to experiments.{name}.students, ids: [{ids}]")
    for dotted in DROP_KEYS:
        section = config
        for part in dotted.split("."):
            section = section.get(part) if isinstance(section, dict) else None
        if isinstance(section, dict) and "drop" in section:
            drop = section["drop"]
            value = "null" if drop is None else registry.mobilenet(drop) if isinstance(drop, int) else drop
            lines.append(f"{dotted}.drop: renamed to {dotted}.student: {value}")
    return lines


def _uses_at(method: str) -> bool:
    try:
        return get_method(method).at
    except ValueError:
        return False


def _check_names(config: dict) -> None:
    """Every method, attribution, student id and loss weight names a registered entry
    (igkd's or a plugin's): one line per unknown name, naming its key."""
    problems = []

    def check(key: str, value, parse) -> None:
        try:
            parse(value)
        except ValueError as err:
            problems.append(f"{key}: {err}")

    for name, section in config["experiments"].items():
        for i, method in enumerate(section["methods"]):
            check(f"experiments.{name}.methods.{i}", method, get_method)
        for i, student in enumerate(section["students"]):
            check(f"experiments.{name}.students.{i}", student, registry.parse_student)
        at_methods = [m for m in section["methods"] if _uses_at(m)]
        for student in section["students"] if at_methods else []:
            check(f"experiments.{name}.students", student, lambda s: registry.parse_student(s)[0].require_at())
    controls, figures = config.get("controls", {}), config.get("figures", {})
    for key in ("methods", "compare_with"):
        for i, method in enumerate(controls.get(key, [])):
            check(f"controls.{key}.{i}", method, get_method)
    for i, method in enumerate(figures.get("attention", {}).get("methods", [])):
        check(f"figures.attention.methods.{i}", method, get_method)
    for key, value in (
        ("controls.student", controls.get("student")),
        ("sweeps.student", config.get("sweeps", {}).get("student")),
        *((f"figures.{f}.student", figures.get(f, {}).get("student")) for f in ("mc_hist", "attention", "power")),
    ):
        if value is not None:
            check(key, value, registry.parse_student)
    for i, name in enumerate(config["precompute"]["attributions"]):
        check(f"precompute.attributions.{i}", name, registry.attribution)
    for i, name in enumerate(figures.get("attributions", {}).get("methods", [])):
        check(f"figures.attributions.methods.{i}", name, registry.attribution)
    check("students.ig.attribution", config["students"]["ig"]["attribution"], registry.attribution)
    for name in config["students"].get("losses", {}):
        check(f"students.losses.{name}", name, registry.loss)
    for name in config["precompute"].get("plugin_settings", {}):
        check(f"precompute.plugin_settings.{name}", name, registry.attribution)
    if problems:
        raise InputError("invalid config:\n" + "\n".join(f"  {p}" for p in problems))


def _key(error) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    return path or "<top level>"


def _message(error) -> str:
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        return f"{error.message}; allowed keys: {', '.join(allowed)}"
    if error.validator == "enum":
        return f"{error.instance!r} is not one of {error.validator_value}"
    if error.validator == "anyOf" and error.context:
        return "; ".join(dict.fromkeys(_message(e) for e in error.context))
    if error.validator == "oneOf" and isinstance(error.instance, dict):
        return f"expected null or a mapping with mean and std of 3 numbers each (std > 0), got {error.instance!r}"
    return error.message


def _check_cross_keys(config: dict) -> None:
    data, teacher, students = config["dataset"], config["teacher"], config["students"]
    problems = []
    if (bad_tag := tag_problem(data.get("tag"))) is not None:
        problems.append(bad_tag)
    if data["name"] == "cifar10" and data["cifar10"]["source"] == "path" and not data["cifar10"]["path"]:
        problems.append("dataset.cifar10.path: required when dataset.cifar10.source is 'path'")
    if data["name"] == "imagefolder" and not data["imagefolder"]["root"]:
        problems.append("dataset.imagefolder.root: required when dataset.name is 'imagefolder'")
    if teacher["source"] == "import" and not teacher["weights"]:
        problems.append("teacher.weights: required when teacher.source is 'import'")
    if students["ig"]["power_min"] > students["ig"]["power_max"]:
        problems.append("students.ig.power_min: must not exceed students.ig.power_max")
    ig = config["precompute"].get("ig", {})
    if ig.get("tolerance") is not None and ig.get("method") != "trapezoid":
        problems.append(
            f"precompute.ig.tolerance: refining to a tolerance needs precompute.ig.method: trapezoid "
            f"(nested grids), got {ig.get('method')!r}; or set tolerance: null"
        )
    if ig.get("method") == "trapezoid" and ig["steps"] < 2:
        problems.append(f"precompute.ig.steps: the trapezoid rule needs at least 2 points, got {ig['steps']}")
    if ig.get("tolerance") is not None and ig["max_steps"] < ig["steps"]:
        problems.append(
            f"precompute.ig.max_steps: expected at least precompute.ig.steps ({ig['steps']}), got {ig['max_steps']}"
        )
    needed = students["ig"]["attribution"]
    controls = config.get("controls", {})
    experiments = config.get("experiments", {})
    enabled = {name: e for name, e in experiments.items() if e.get("enabled", True)}
    trained = [m for e in enabled.values() for m in e["methods"]]
    if controls.get("methods"):
        trained += [*controls["methods"], *controls.get("compare_with", [])]
        paired = experiments.get(controls.get("experiment"))
        if paired is None:
            problems.append(f"controls.experiment: {controls.get('experiment')!r} is not in experiments")
    uses_maps = any(get_method(m).ig and get_method(m).attribution is None for m in trained)
    both = sorted(set(controls.get("methods", [])) & set(controls.get("compare_with", [])))
    if both:
        problems.append(
            f"controls.methods: {both} also in controls.compare_with; a method is either a control or compared with one"
        )
    if uses_maps and needed not in config["precompute"]["attributions"]:
        listed = config["precompute"]["attributions"]
        problems.append(f"students.ig.attribution: {needed!r} is not in precompute.attributions {listed}")
    external = config.get("external_eval", {})
    if external.get("standin_rotation") is not None:
        if not external.get("root"):
            problems.append(
                "external_eval.root: required when external_eval.standin_rotation is set "
                "(the stand-in is written there)"
            )
        if external.get("class_map"):
            problems.append(
                "external_eval.class_map: must be null with standin_rotation (the stand-in's folders are class names)"
            )
    if problems:
        raise InputError("invalid config:\n" + "\n".join(f"  {p}" for p in problems))


def merge(base: dict, override: dict) -> dict:
    """Recursive dict update, as Snakemake merges --configfile over configfile."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_config(*paths: str | os.PathLike) -> dict:
    """Merge YAML files left to right and validate the result."""
    config: dict = {}
    for path in paths:
        with open(path) as fh:
            config = merge(config, yaml.safe_load(fh) or {})
    return validate_config(config, config_dirs=tuple(Path(p).parent for p in paths))
