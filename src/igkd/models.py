"""The CIFAR MobileNetV2 teacher and its truncated students.

Built from torchvision's MobileNetV2 blocks: the CIFAR variant only changes the stem
stride and the second stage's stride to 1, so a 32x32 image ends at 4x4. A student keeps
the first 19 - L feature blocks of the same architecture and adds global pooling and one
linear layer, so student and teacher feature maps at a shared block index have the same
spatial size (needed for attention transfer).

The blocks are a copy of torchvision 0.29's (`Conv2dNormActivation`, `InvertedResidual`,
`MobileNetV2` below), so that a job need not import torchvision: any `torchvision.*`
import runs `torchvision/__init__`, which imports all of torchvision, and
`torchvision.ops.roi_align` imports `torch._dynamo`; 2.5-3 s of start-up in every job
that builds a model, for three small layer classes (docs/performance.md "Start-up cost
of a job"). Classes, construction order and weight initialisation are torchvision's line
for line (module names and attributes included), so a seed gives the same weights and
saved state dicts load either way; tests/test_models.py checks that against torchvision.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import Tensor, nn

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
# torchvision's MobileNetV2 stem and head widths and channel rounding
STEM_CHANNELS = 32
LAST_CHANNELS = 1280
ROUND_NEAREST = 8


def make_divisible(v: float, divisor: int, min_value: int | None = None) -> int:
    """torchvision's `_make_divisible`: the nearest multiple of `divisor`, at most 10 % below v."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class Conv2dNormActivation(nn.Sequential):
    """Conv2d (no bias, "same" padding) + BatchNorm2d + activation (torchvision.ops.misc)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        norm_layer: Callable[..., nn.Module] = nn.BatchNorm2d,
        activation_layer: Callable[..., nn.Module] = nn.ReLU6,
    ) -> None:
        padding = (kernel_size - 1) // 2
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation=1, groups=groups, bias=False)
        super().__init__(conv, norm_layer(out_channels), activation_layer(inplace=True))
        self.out_channels = out_channels


class InvertedResidual(nn.Module):
    """Expand (1x1) -> depthwise 3x3 -> project (1x1), with a skip when shapes allow."""

    def __init__(
        self, inp: int, oup: int, stride: int, expand_ratio: int, norm_layer: Callable[..., nn.Module] | None = None
    ) -> None:
        super().__init__()
        self.stride = stride
        if stride not in [1, 2]:
            raise ValueError(f"stride should be 1 or 2 instead of {stride}")
        if norm_layer is None:
            norm_layer = nn.BatchNorm2d
        hidden_dim = int(round(inp * expand_ratio))
        self.use_res_connect = self.stride == 1 and inp == oup
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(Conv2dNormActivation(inp, hidden_dim, kernel_size=1, norm_layer=norm_layer))
        layers.extend(
            [
                Conv2dNormActivation(hidden_dim, hidden_dim, stride=stride, groups=hidden_dim, norm_layer=norm_layer),
                nn.Conv2d(hidden_dim, oup, 1, 1, 0, bias=False),
                norm_layer(oup),
            ]
        )
        self.conv = nn.Sequential(*layers)
        self.out_channels = oup
        self._is_cn = stride > 1

    def forward(self, x: Tensor) -> Tensor:
        if self.use_res_connect:
            return x + self.conv(x)
        return self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision's MobileNetV2 (`features`, `classifier`); FeatureNet runs the blocks."""

    def __init__(
        self,
        num_classes: int,
        width_mult: float,
        inverted_residual_setting: list[list[int]],
        dropout: float,
    ) -> None:
        super().__init__()
        input_channel = make_divisible(STEM_CHANNELS * width_mult, ROUND_NEAREST)
        self.last_channel = make_divisible(LAST_CHANNELS * max(1.0, width_mult), ROUND_NEAREST)
        features: list[nn.Module] = [Conv2dNormActivation(3, input_channel, stride=2)]
        for t, c, n, s in inverted_residual_setting:
            output_channel = make_divisible(c * width_mult, ROUND_NEAREST)
            for i in range(n):
                stride = s if i == 0 else 1
                features.append(InvertedResidual(input_channel, output_channel, stride, expand_ratio=t))
                input_channel = output_channel
        features.append(Conv2dNormActivation(input_channel, self.last_channel, kernel_size=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(p=dropout), nn.Linear(self.last_channel, num_classes))
        # torchvision's weight initialisation, in module order
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)


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


def at_tap(drop: int) -> tuple[str, int]:
    """The MobileNetV2 students' attention-transfer tap (igkd.registry): the same feature
    block in student and teacher."""
    block = at_block(drop)
    return f"features.{block}", block


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
