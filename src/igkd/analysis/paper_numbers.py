"""The paper's published numbers (src/igkd/data/paper_numbers.yaml), loaded and checked, and
whether a configuration is one they can be compared with.

The numbers live in one file so that nothing else restates them; each becomes one
`PaperNumber` naming the igkd cell (method, student, training fraction) it is compared with.
The file keeps the paper's own terms: its students are its CIFAR MobileNetV2 without its
last `drop` feature blocks, which igkd calls `mobilenetv2-drop<drop>` (`PaperNumber.student`).
`comparability` holds a config against the paper's settings (the file's `settings`): only
CIFAR-10 at those settings can reproduce the paper, anything else gets one line naming the
first difference. Light on imports (yaml only): the Snakefile asks it, on every dry run,
whether compare_paper reads the runs or writes that one line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from igkd import registry
from igkd.io import InputError

NUMBERS = Path(__file__).resolve().parents[1] / "data" / "paper_numbers.yaml"

# What a published number is (PaperNumber.quantity).
MEAN = "mean"  # of `n` runs, with their sd
MAX = "max"  # the best of `n` runs (descriptive; never tested)
SINGLE = "single run"  # one run, no spread
TIME = "ms per batch"  # inference time, not comparable with igkd's timing

# compare_paper's `comparable` param when the comparison is made (else the reason).
COMPARABLE = "comparable"
DIRECTIONS = ("higher", "lower")


@dataclass(frozen=True)
class PaperNumber:
    """One published number and the igkd cell it is held against."""

    section: str  # teacher | ablation | montecarlo | compression | inference | imagenet_subset
    quantity: str  # MEAN | MAX | SINGLE | TIME
    method: str  # a method, or "teacher"
    value: float
    drop: int | None = None  # the paper's drop (blocks removed from its MobileNetV2); None: the teacher
    factor: float | None = None  # the paper's compression factor
    fraction: float | None = None  # training fraction of the cell's runs
    n: int = 1  # runs behind the number
    sd: float | None = None
    sd_approx: bool = False  # the paper says "about"

    @property
    def student(self) -> str | None:
        """igkd's id of the paper's student (mobilenetv2-drop5); None: the teacher."""
        return None if self.drop is None else registry.mobilenet(self.drop)


@dataclass(frozen=True)
class Claim:
    """A headline claim: `method` is `direction` than `baseline` (with p below `p_below`, if the paper says)."""

    method: str
    baseline: str
    direction: str
    p_below: float | None
    sections: tuple[str, ...]  # the cells (sections with a student and fraction) it is re-tested at


@dataclass(frozen=True)
class PaperNumbers:
    citation: str
    url: str
    units: Mapping[str, str]
    settings: tuple[tuple[str, object], ...]  # (dotted config key, the paper's value), in check order
    numbers: tuple[PaperNumber, ...]
    claims: tuple[Claim, ...]
    timing_not_comparable: str  # why the inference times get no verdict

    def section(self, name: str) -> list[PaperNumber]:
        return [n for n in self.numbers if n.section == name]

    def cell(self, section: str) -> tuple[str, float]:
        """(student id, fraction) of a section's mean rows (ablation, montecarlo)."""
        first = next(n for n in self.numbers if n.section == section and n.quantity == MEAN)
        return first.student, first.fraction


@dataclass(frozen=True)
class Comparability:
    """Whether a config can be compared with the paper; `reason` is the one line saying why not."""

    reason: str | None

    @property
    def comparable(self) -> bool:
        return self.reason is None

    def param(self) -> str:
        """compare_paper's `comparable` param: changes exactly when the report would."""
        return COMPARABLE if self.reason is None else self.reason


# --------------------------------------------------------------------------- loading


class _Reader:
    """Typed access to the file's mappings; every error names the file and the key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, expected: str, got) -> InputError:
        return InputError(f"{self.path}: {where}: expected {expected}, got {got!r}")

    def mapping(self, node, key: str, where: str) -> Mapping:
        value = node.get(key) if isinstance(node, Mapping) else None
        if not isinstance(value, Mapping):
            raise self.fail(f"{where}{key}", "a mapping", value)
        return value

    def number(self, node: Mapping, key: str, where: str, positive: bool = False) -> float:
        value = node.get(key)
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or (positive and value <= 0):
            raise self.fail(f"{where}{key}", "a positive number" if positive else "a number", value)
        return float(value)

    def count(self, node: Mapping, key: str, where: str) -> int:
        value = node.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise self.fail(f"{where}{key}", "a whole number >= 1", value)
        return value

    def text(self, node: Mapping, key: str, where: str) -> str:
        value = node.get(key)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{where}{key}", "text", value)
        return value.strip()


def load_numbers(path: str | Path = NUMBERS) -> PaperNumbers:
    """The file as PaperNumbers; an InputError naming the key where it is malformed."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not valid YAML ({err})") from err
    r = _Reader(path)
    if not isinstance(doc, Mapping):
        raise r.fail("top level", "a mapping", doc)
    source = r.mapping(doc, "source", "")
    settings = r.mapping(doc, "settings", "")
    numbers = [
        PaperNumber("teacher", SINGLE, "teacher", r.number(r.mapping(doc, "teacher", ""), "accuracy", "teacher.")),
        *_runs_section(r, doc, "ablation", with_max=True),
        *_runs_section(r, doc, "montecarlo", with_max=False),
        *_compression(r, doc),
        *_inference(r, doc),
        PaperNumber(
            "imagenet_subset",
            SINGLE,
            "teacher",
            r.number(r.mapping(doc, "imagenet_subset", ""), "teacher_accuracy", "imagenet_subset."),
        ),
    ]
    return PaperNumbers(
        citation=r.text(source, "citation", "source."),
        url=r.text(source, "url", "source."),
        units={str(k): str(v) for k, v in r.mapping(doc, "units", "").items()},
        settings=tuple((str(k), v) for k, v in settings.items()),
        numbers=tuple(numbers),
        claims=_claims(r, doc, {n.section for n in numbers if n.quantity == MEAN}),
        timing_not_comparable=r.text(r.mapping(doc, "inference", ""), "not_comparable", "inference."),
    )


def _runs_section(r: _Reader, doc: Mapping, name: str, with_max: bool) -> list[PaperNumber]:
    """ablation / montecarlo: mean and sd (and max) of `runs` runs per method at one cell."""
    section = r.mapping(doc, name, "")
    where = f"{name}."
    drop, factor = r.count(section, "drop", where), r.number(section, "factor", where, positive=True)
    fraction, runs = r.number(section, "fraction", where, positive=True), r.count(section, "runs", where)
    cell = {"drop": drop, "factor": factor, "fraction": fraction, "n": runs}
    out = []
    for method, entry in r.mapping(section, "methods", where).items():
        at = f"{where}methods.{method}."
        if not isinstance(entry, Mapping):
            raise r.fail(at[:-1], "a mapping with mean and sd", entry)
        mean, sd = r.number(entry, "mean", at), r.number(entry, "sd", at, positive=True)
        approx = entry.get("sd_approx", False)
        if not isinstance(approx, bool):
            raise r.fail(f"{at}sd_approx", "true or false", approx)
        out.append(PaperNumber(name, MEAN, str(method), mean, sd=sd, sd_approx=approx, **cell))
        if with_max:
            out.append(PaperNumber(name, MAX, str(method), r.number(entry, "max", at), **cell))
    return out


def _entries(r: _Reader, section: Mapping, key: str, what: str):
    """(`key[i].`, entry) for each mapping of the non-empty list at `key` (dotted; its last
    part is read from `section`); a one-line error naming the key otherwise."""
    entries = section.get(key.rsplit(".", 1)[-1])
    if not isinstance(entries, list) or not entries:
        raise r.fail(key, what, entries)
    for i, entry in enumerate(entries):
        at = f"{key}[{i}]."
        if not isinstance(entry, Mapping):
            raise r.fail(at[:-1], "a mapping", entry)
        yield at, entry


def _compression(r: _Reader, doc: Mapping) -> list[PaperNumber]:
    section = r.mapping(doc, "compression", "")
    methods = section.get("methods")
    if not isinstance(methods, list) or not methods or not all(isinstance(m, str) for m in methods):
        raise r.fail("compression.methods", "a list of method names", methods)
    fraction = r.number(section, "fraction", "compression.", positive=True)
    out = []
    for at, entry in _entries(r, section, "compression.factors", "a list of {drop, factor, accuracy}"):
        drop, factor = r.count(entry, "drop", at), r.number(entry, "factor", at, positive=True)
        accuracy = entry.get("accuracy")
        if not isinstance(accuracy, list) or len(accuracy) != len(methods):
            raise r.fail(f"{at}accuracy", f"{len(methods)} numbers (one per compression.methods)", accuracy)
        for j, method in enumerate(methods):
            value = r.number({"v": accuracy[j]}, "v", f"{at}accuracy[{j}]")
            out.append(PaperNumber("compression", SINGLE, method, value, drop, factor, fraction))
    return out


def _inference(r: _Reader, doc: Mapping) -> list[PaperNumber]:
    out = []
    section = r.mapping(doc, "inference", "")
    for at, entry in _entries(r, section, "inference.times", "a list of {model, drop, factor, ms}"):
        drop = entry.get("drop")
        if drop is not None and (not isinstance(drop, int) or isinstance(drop, bool)):
            raise r.fail(f"{at}drop", "a whole number or null (the teacher)", drop)
        model = r.text(entry, "model", at)
        factor = r.number(entry, "factor", at, positive=True)
        out.append(PaperNumber("inference", TIME, model, r.number(entry, "ms", at, positive=True), drop, factor))
    return out


def _claims(r: _Reader, doc: Mapping, cells: set[str]) -> tuple[Claim, ...]:
    claims = doc.get("claims")
    if not isinstance(claims, list):
        raise r.fail("claims", "a list", claims)
    out = []
    for i, entry in enumerate(claims):
        at = f"claims[{i}]."
        if not isinstance(entry, Mapping):
            raise r.fail(at[:-1], "a mapping", entry)
        direction = entry.get("direction")
        if direction not in DIRECTIONS:
            raise r.fail(f"{at}direction", " or ".join(DIRECTIONS), direction)
        p_below = entry.get("p_below")
        if p_below is not None:
            p_below = r.number(entry, "p_below", at, positive=True)
        sections = entry.get("sections")
        if not isinstance(sections, list) or not sections or not set(sections) <= cells:
            raise r.fail(f"{at}sections", f"a list of {sorted(cells)}", sections)
        method, baseline = r.text(entry, "method", at), r.text(entry, "baseline", at)
        out.append(Claim(method, baseline, direction, p_below, tuple(sections)))
    return tuple(out)


# --------------------------------------------------------------------------- comparability


def _lookup(config: Mapping, dotted: str):
    node = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise InputError(f"{NUMBERS.name}: settings.{dotted}: not a config key")
        node = node[part]
    return node


def _show(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def comparability(config: Mapping, numbers: PaperNumbers) -> Comparability:
    """Comparable only on the paper's dataset at every one of its settings; otherwise the
    one line naming the first setting that differs (the dataset itself, if that does)."""
    for key, paper in numbers.settings:
        value = _lookup(config, key)
        if value != paper:
            what = _show(value) if key == "dataset.name" else f"{key} is {_show(value)}, the paper's {_show(paper)}"
            return Comparability(f"not comparable: {what} (the paper's numbers are CIFAR-10 at its settings)")
    return Comparability(None)
