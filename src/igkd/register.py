"""Register your own students, attributions, loss terms and methods by name (docs/extending.md).

A plugin is a Python module or file named in the config (`plugins: [my_ideas.py]`); it
imports this module and decorates its functions:

    from igkd import register

    @register.student("resnet_tiny", size="width", at=("layer2", 9))
    def build(size, num_classes, width): ...

    @register.attribution("edges")
    def edges(model, x, target, settings): ...

    @register.loss("logit_norm", weight=0.1)
    def logit_norm(inputs): ...

    register.method("KD_LN", kd=True, losses=("logit_norm",))

Then `mobilenetv2-drop5`'s neighbour `resnet_tiny-width4` is a student id the experiments
can list, `KD_IG@edges` a method, and `KD_LN` a method with its own term. Each entry's
source is fingerprinted (igkd.plugins.source_fingerprint): the stages that use it rerun
when it changes, the others do not. Names are the config's, so they must be new.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from igkd import registry
from igkd.plugins import caller_origin, origin_of, source_fingerprint
from igkd.training.methods import METHODS, Method


def _new(kind: str, name: str, table: dict, pattern=registry.NAME) -> None:
    if not pattern.match(name):
        raise ValueError(f"{kind} name {name!r}: expected {pattern.pattern}")
    if name in table:
        raise ValueError(f"{kind} {name!r} is already registered (by {getattr(table[name], 'origin', 'igkd')})")


def student(name: str, *, size: str, at: tuple[str, int] | Callable | None = None, sizes=None):
    """Register `build(size, num_classes, width) -> nn.Module` as architecture `name`: its
    students are `<name>-<size><N>`. `at`: (student module, teacher block) attention
    transfer matches, or a function of the size returning that pair; None = no AT."""
    if not registry.NAME.match(size) or "_" in size or any(c.isdigit() for c in size):
        raise ValueError(f"student {name!r}: size name {size!r} must be lower-case letters (e.g. depth, width)")

    def add(build: Callable) -> Callable:
        _new("student", name, registry.ARCHITECTURES)
        registry.ARCHITECTURES[name] = registry.Architecture(
            name,
            size,
            build,
            at=at,
            sizes=tuple(sizes) if sizes else None,
            description=(build.__doc__ or "").strip().split("\n")[0],
            origin=origin_of(build),
            fingerprint=source_fingerprint(build, *([at] if callable(at) else [])),
        )
        return build

    return add


def attribution(name: str, *, control: bool = False, defaults: dict | None = None):
    """Register `fn(model, x, target, settings) -> (attr, delta)` as attribution `name`
    (contract: docs/extending.md); `defaults` are its settings where
    precompute.plugin_settings.<name> gives none."""

    def add(fn: Callable) -> Callable:
        _new("attribution", name, registry.ATTRIBUTIONS)
        registry.ATTRIBUTIONS[name] = registry.Attribution(
            name, fn, control, dict(defaults or {}), origin_of(fn), source_fingerprint(fn)
        )
        return fn

    return add


def loss(name: str, *, weight: float = 1.0):
    """Register `fn(inputs: igkd.training.distiller.LossInputs) -> scalar tensor` as loss
    term `name`; a method that lists it adds weight * fn(inputs) to its loss dict under
    `name` (weight: students.losses.<name>, else this default)."""

    def add(fn: Callable) -> Callable:
        _new("loss", name, registry.LOSSES)
        registry.LOSSES[name] = registry.Loss(name, fn, float(weight), origin_of(fn), source_fingerprint(fn))
        return fn

    return add


def method(name: str, *, kd: bool = False, ig: bool = False, at: bool = False, losses: tuple[str, ...] = ()) -> Method:
    """Register a method: which of the Distiller's parts it switches on (KD soft targets,
    the IG overlay, attention transfer) and the registered loss terms it adds."""
    _new("method", name, METHODS, pattern=registry.METHOD_NAME)
    for term in losses:
        registry.loss(term)  # registered first, or a one-line error
    entry = Method(kd=kd, ig=ig, at=at, losses=tuple(losses), origin=caller_origin())
    definition = repr(dataclasses.asdict(entry))
    METHODS[name] = dataclasses.replace(entry, fingerprint=source_fingerprint(definition))
    return METHODS[name]
