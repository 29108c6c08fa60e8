"""The CIFAR MobileNetV2 teacher and its truncated students.

Built from torchvision's MobileNetV2 blocks (no re-implementation): the CIFAR variant
only changes the stem stride and the second stage's stride to 1, so a 32x32 image ends
at 4x4. A student keeps the first 19 - L feature blocks of the same architecture and
adds global pooling and one linear layer, so student and teacher feature maps at a
shared block index have the same spatial size (needed for attention transfer).
"""

from __future__ import annotations

import functools

import torch
from torch import nn
from torchvision.models.mobilenetv2 import MobileNetV2

N_FEATURE_BLOCKS = 19
# t (expansion), c (channels), n (repeats), s (stride): torchvision's table with the
# second stage's stride set to 1 for 32x32 inputs.
CIFAR_BLOCK_TABLE = [
    [1, 16, 1, 1],
    [6, 24, 2, 1],
    [6, 32, 3, 2],
    [6, 64, 4, 2],
    [6, 96, 3, 1],
    [6, 160, 3, 2],
    [6, 320, 1, 1],
]
TEACHER_DROPOUT = 0.2
# Attention-transfer tap (feature block index) per number of removed blocks (docs/method.md).
AT_BLOCK_BY_DROP = {3: 9, 5: 9, 7: 9, 9: 4, 11: 4, 13: 4, 15: 2, 17: 0}


class FeatureNet(nn.Module):
    """A stack of feature blocks + pooling + classifier that can also return one block's output."""

    def __init__(self, features: nn.Sequential, classifier: nn.Module) -> None:
        super().__init__()
        self.features = features
        self.classifier = classifier
        self.channels_last = False

    def use_channels_last(self, enabled: bool = True) -> FeatureNet:
        """Channels-last weights and inputs: 1.6-1.7x faster depthwise convs on CPU (oneDNN)."""
        self.channels_last = enabled
        return self.to(memory_format=torch.channels_last if enabled else torch.contiguous_format)

    def forward(self, x: torch.Tensor, tap: int | None = None):
        """Logits, or (logits, activation after block `tap`) when a tap is asked for."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        tapped = None
        for index, block in enumerate(self.features):
            x = block(x)
            if index == tap:
                tapped = x
        logits = self.classifier(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))
        return logits if tap is None else (logits, tapped)


def _cifar_mobilenet_v2(num_classes: int, width: float) -> MobileNetV2:
    net = MobileNetV2(
        num_classes=num_classes,
        width_mult=width,
        inverted_residual_setting=CIFAR_BLOCK_TABLE,
        dropout=TEACHER_DROPOUT,
    )
    net.features[0][0].stride = (1, 1)  # stride-1 stem for 32x32 inputs
    assert len(net.features) == N_FEATURE_BLOCKS
    return net


def build_teacher(num_classes: int = 10, width: float = 1.0) -> FeatureNet:
    net = _cifar_mobilenet_v2(num_classes, width)
    return FeatureNet(net.features, net.classifier)


def build_student(drop: int, num_classes: int = 10, width: float = 1.0) -> FeatureNet:
    """Drop the last `drop` feature blocks of the CIFAR MobileNetV2; no dropout."""
    if not 1 <= drop <= N_FEATURE_BLOCKS - 1:
        raise ValueError(f"drop must lie in 1..{N_FEATURE_BLOCKS - 1}, got {drop}")
    net = _cifar_mobilenet_v2(num_classes, width)
    features = net.features[: N_FEATURE_BLOCKS - drop]
    channels = _out_channels(features[-1])
    return FeatureNet(features, nn.Linear(channels, num_classes))


def _out_channels(block: nn.Module) -> int:
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@functools.cache
def reference_params(num_classes: int = 10) -> int:
    """Parameters of the paper's width-1.0 teacher: the numerator of its compression factors."""
    return n_params(build_teacher(num_classes, 1.0))


def paper_factor(params: int, num_classes: int = 10) -> float:
    """The paper's factor of a model with `params` parameters: width-1.0 teacher parameters /
    params (tables call the factor vs the run's own teacher `factor`)."""
    return reference_params(num_classes) / params


def compression_factor(drop: int, num_classes: int = 10, width: float = 1.0) -> float:
    """The paper's factor of the student without `drop` blocks."""
    return paper_factor(n_params(build_student(drop, num_classes, width)), num_classes)


def at_block(drop: int) -> int:
    """Feature block whose attention map is matched; for drops outside the paper's table,
    the deepest block of the paper's rule that the student still has."""
    if drop in AT_BLOCK_BY_DROP:
        return AT_BLOCK_BY_DROP[drop]
    kept = N_FEATURE_BLOCKS - drop
    candidates = sorted(set(AT_BLOCK_BY_DROP.values()))
    return max(b for b in candidates if b < kept)


def multiply_adds(model: nn.Module, image_size: int) -> int:
    """Multiply-adds of conv and linear layers for one image (forward hooks on a dummy pass)."""
    total = 0

    def conv_hook(module, inputs, output):
        nonlocal total
        kernel = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
        total += output.numel() * kernel

    def linear_hook(module, inputs, output):
        nonlocal total
        total += module.in_features * module.out_features

    handles = [
        m.register_forward_hook(conv_hook if isinstance(m, nn.Conv2d) else linear_hook)
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, image_size, image_size))
    model.train(was_training)
    for handle in handles:
        handle.remove()
    return total


def load_weights(model: nn.Module, path, what: str) -> nn.Module:
    """Load a saved state dict into `model` (weights_only); weights of another architecture
    are an InputError naming the file and `what` they should fit."""
    from igkd.io import InputError, load_torch

    try:
        model.load_state_dict(load_torch(path))
    except RuntimeError as err:
        raise InputError(f"{path}: weights do not fit the {what} ({str(err).splitlines()[0]})") from err
    return model
