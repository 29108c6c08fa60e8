"""What a config can name: student architectures, attributions, loss terms and methods.

igkd's own entries are listed here; a plugin (config `plugins`, igkd.plugins) adds its
own through `igkd.register`. Torch-free: the workflow validates names and builds its job
list from this module on every dry run, so igkd's entries name their code as
"module:function" strings, imported only when a job builds the thing. A plugin's entry
holds its function and a fingerprint of its source (igkd.plugins.source_fingerprint):
the rules that use the entry carry it as a param, so editing it reruns exactly those.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

# A student id: <architecture>-<size name><size>, e.g. mobilenetv2-drop5, resnet-depth8.
STUDENT_ID = re.compile(r"^(?P<arch>[a-z][a-z0-9_]*)-(?P<size_name>[a-z]+)(?P<size>\d+)$")
NAME = re.compile(r"^[a-z][a-z0-9_]*$")
METHOD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
SHIPPED = "igkd"  # the origin of igkd's own entries


def resolve(ref: str | Callable) -> Callable:
    """A function from its "module:function" reference (or the function itself)."""
    if callable(ref):
        return ref
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Architecture:
    """A student family: `build(size, num_classes, width)` returns an nn.Module whose
    forward(x) gives logits. `at(size)` says where attention transfer taps it: (the
    student's module whose output is matched, the teacher's feature block of the same
    spatial size). `sizes`: the allowed sizes (inclusive), or None for any positive one."""

    name: str
    size_name: str
    build: str | Callable
    at: str | Callable | tuple[str, int] | None = None
    sizes: tuple[int, int] | None = None
    description: str = ""
    origin: str = SHIPPED
    fingerprint: str | None = None
    size_rule: tuple[int, int] | None = None  # (m, r): sizes with size % m == r only (ResNet: 6n + 2)

    def check_size(self, size: int) -> None:
        if self.sizes and not self.sizes[0] <= size <= self.sizes[1]:
            low, high = self.sizes
            raise ValueError(f"{self.name}: {self.size_name} must lie in {low}..{high}, got {size}")
        if self.size_rule and size % self.size_rule[0] != self.size_rule[1]:
            m, r = self.size_rule
            raise ValueError(f"{self.name}: {self.size_name} must be {m}n + {r}, got {size}")

    def require_at(self) -> None:
        if self.at is None:
            raise ValueError(f"student architecture {self.name!r} registered no attention-transfer tap (at=...)")

    def at_tap(self, size: int) -> tuple[str, int]:
        """(student module name, teacher feature block) that attention transfer matches."""
        self.require_at()
        if isinstance(self.at, tuple):
            return self.at
        module, block = resolve(self.at)(size)
        return str(module), int(block)


@dataclass(frozen=True)
class Attribution:
    """A per-image attribution of the teacher: fn(model, x, target, settings) -> (attr,
    delta), x normalised as the teacher sees it; attr (B,C,H,W) at the input's or a
    layer's resolution (to_map upsamples), delta the completeness error per image (NaN
    where the method has none). `settings` is its config section (precompute.<name>)."""

    name: str
    fn: str | Callable
    control: bool = False  # maps that carry no knowledge of the image by construction (random)
    defaults: dict | None = None  # a plugin's settings when the config gives none
    origin: str = SHIPPED
    fingerprint: str | None = None


@dataclass(frozen=True)
class Loss:
    """A loss term a method adds to the student's loss dict: fn(LossInputs) -> scalar
    tensor, times its weight (students.losses.<name>, else `weight`)."""

    name: str
    fn: str | Callable
    weight: float = 1.0
    origin: str = SHIPPED
    fingerprint: str | None = None


ARCHITECTURES: dict[str, Architecture] = {
    "mobilenetv2": Architecture(
        "mobilenetv2",
        "drop",
        "igkd.models:build_student",
        at="igkd.models:at_tap",
        sizes=(1, 18),
        description="the paper's CIFAR MobileNetV2 without its last `drop` feature blocks",
    ),
    "resnet": Architecture(
        "resnet",
        "depth",
        "igkd.architectures.resnet_cifar:build_resnet",
        at="igkd.architectures.resnet_cifar:at_tap",
        sizes=(8, 110),
        size_rule=(6, 2),
        description="the CIFAR ResNets of He et al. (depth 6n + 2: 8, 14, 20, ...), as mdistiller ships them",
    ),
}
ATTRIBUTIONS: dict[str, Attribution] = {
    "ig": Attribution("ig", "igkd.attribution.maps:integrated_gradients"),
    "saliency": Attribution("saliency", "igkd.attribution.maps:saliency"),
    "smoothgrad": Attribution("smoothgrad", "igkd.attribution.maps:smoothgrad"),
    "gradientshap": Attribution("gradientshap", "igkd.attribution.maps:gradient_shap"),
    "gradcam": Attribution("gradcam", "igkd.attribution.maps:grad_cam"),
    "random": Attribution("random", "igkd.controls:random_map", control=True),
}
LOSSES: dict[str, Loss] = {}


def ensure_plugins() -> None:
    """Load the plugins this process's parent loaded (a job started by the workflow):
    called when a name is not found, so a job's scripts need not load plugins themselves."""
    from igkd.plugins import load_from_environment

    load_from_environment()


def student_id(arch: str, size: int) -> str:
    return f"{arch}-{ARCHITECTURES[arch].size_name}{int(size)}"


def parse_student(text: str) -> tuple[Architecture, int]:
    """'mobilenetv2-drop5' -> (the mobilenetv2 entry, 5); ValueError names what is wrong."""
    match = STUDENT_ID.match(str(text))
    if not match:
        raise ValueError(f"student {text!r}: expected <architecture>-<size name><size>, e.g. mobilenetv2-drop5")
    arch = _registered(ARCHITECTURES, match["arch"])
    if arch is None:
        raise ValueError(
            f"student {text!r}: unknown architecture {match['arch']!r}; expected one of {sorted(ARCHITECTURES)}"
        )
    if match["size_name"] != arch.size_name:
        raise ValueError(
            f"student {text!r}: {arch.name} is sized by {arch.size_name}, e.g. {arch.name}-{arch.size_name}N"
        )
    size = int(match["size"])
    arch.check_size(size)
    return arch, size


def paper_drop(student: str) -> int | None:
    """The paper's drop of a MobileNetV2 student id (its tables are by drop), else None."""
    match = STUDENT_ID.match(str(student))
    if match and match["arch"] == "mobilenetv2" and match["size_name"] == "drop":
        return int(match["size"])
    return None


def mobilenet(drop: int) -> str:
    """The paper's student without `drop` blocks, as an id."""
    return student_id("mobilenetv2", drop)


def student_order(student: str) -> tuple:
    """Sort key: architectures in registry order, then by size (drop 3 before drop 11)."""
    arch, size = parse_student(student)
    return (list(ARCHITECTURES).index(arch.name), size)


def _registered(table: dict, name: str):
    """table[name], loading the parent process's plugins first where it is missing; None
    if it is missing still."""
    if name not in table:
        ensure_plugins()
    return table.get(name)


def attribution(name: str) -> Attribution:
    if _registered(ATTRIBUTIONS, name) is None:
        raise ValueError(f"unknown attribution {name!r}; expected one of {sorted(ATTRIBUTIONS)}")
    return ATTRIBUTIONS[name]


def attribution_settings(section: Mapping, name: str) -> dict:
    """The settings attribution `name` runs with, from config `precompute` (`section`):
    igkd's own read precompute.<name>; a plugin's, the defaults it registered merged with
    precompute.plugin_settings.<name> (the config's keys win)."""
    entry = attribution(name)
    if entry.origin == SHIPPED:
        return dict(section.get(name) or {})
    given = (section.get("plugin_settings") or {}).get(name) or {}
    if not isinstance(given, Mapping):
        raise ValueError(f"precompute.plugin_settings.{name}: expected a mapping, got {given!r}")
    return {**(entry.defaults or {}), **given}


def loss(name: str) -> Loss:
    if _registered(LOSSES, name) is None:
        raise ValueError(f"unknown loss {name!r}; expected one of {sorted(LOSSES)} (registered by plugins)")
    return LOSSES[name]


def plugin_fingerprints(entries) -> dict[str, str]:
    """{'<kind> <name>': fingerprint} of the plugin entries among `entries` (shipped ones
    have none: the code fingerprint covers them); a rule param."""
    out = {}
    for kind, entry in entries:
        if entry is not None and entry.fingerprint is not None:
            out[f"{kind} {entry.name}"] = entry.fingerprint
    return out
