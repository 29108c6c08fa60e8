"""Students by id (`mobilenetv2-drop5`, `resnet-depth8`): build one, find its attention-
transfer tap, run it with that tap. The families are listed in igkd.registry (plugins add
theirs through igkd.register.student); the paper's truncated MobileNetV2 is igkd.models.
"""

from __future__ import annotations

import torch
from torch import nn

from igkd import registry


def build_student(student: str, num_classes: int = 10, width: float = 1.0) -> nn.Module:
    """The untrained student `student` (an id), seeded by the caller's torch seed."""
    arch, size = registry.parse_student(student)
    model = registry.resolve(arch.build)(size, num_classes, width)
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"student {student!r}: {arch.origin}'s builder returned {type(model).__name__}, not an nn.Module"
        )
    return model


def at_tap(student: str) -> tuple[str, int]:
    """(student module name, teacher feature block) that attention transfer matches."""
    arch, size = registry.parse_student(student)
    return arch.at_tap(size)


def use_channels_last(model: nn.Module, enabled: bool) -> nn.Module:
    """Channels-last weights (and inputs, for igkd's FeatureNet): faster convs on CPU."""
    if hasattr(model, "use_channels_last"):
        return model.use_channels_last(enabled)
    return model.to(memory_format=torch.channels_last if enabled else torch.contiguous_format)


def forward_with_tap(model: nn.Module, module_name: str, x: torch.Tensor):
    """(logits, the output of submodule `module_name`) in one forward pass: a forward hook,
    so a student needs no tap argument of its own."""
    captured = []
    handle = model.get_submodule(module_name).register_forward_hook(lambda m, i, out: captured.append(out))
    try:
        logits = model(x)
    finally:
        handle.remove()
    return logits, captured[-1]
