"""Config validation: JSON schema (with defaults filled in) plus the cross-key rules a
schema cannot say, with errors that name the offending key."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator, validators

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


def validate_config(config: dict, schema_path: str | os.PathLike = SCHEMA) -> dict:
    """Return a validated copy of `config` with defaults filled; raise InputError naming the key."""
    config = copy.deepcopy(config)
    moved = [k for k in MOVED_TO_EXPERIMENTS if k in (config.get("students") or {})]
    if moved:
        keys = ", ".join(f"students.{k}" for k in moved)
        raise InputError(
            f"invalid config:\n  {keys}: moved to experiments.<name>.{{methods, drops, runs, fraction}} "
            "(ablation, montecarlo, compression, grid; docs/experiments.md)"
        )
    errors = sorted(DefaultingValidator(load_schema(schema_path)).iter_errors(config), key=lambda e: list(e.path))
    if errors:
        lines = [f"  {_key(e)}: {_message(e)}" for e in errors]
        raise InputError("invalid config:\n" + "\n".join(lines))
    _check_cross_keys(config)
    return config


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
    return validate_config(config)
