"""CIFAR ResNets (He et al. 2016, section 4.2): the second student family.

These are the ResNet-8/14/20/... that distillation papers use as students on CIFAR, built
as mdistiller (mdistiller/models/cifar/resnet.py) and torchdistill build them: 3x3 stem
conv with 16 channels, three stages of BasicBlocks (16/32/64 channels, n = (depth - 2) / 6
blocks each, strides 1/2/2), a 1x1 conv + BN projection shortcut wherever the shape
changes, global average pooling and one linear layer. Module names, construction order and
weight initialisation are mdistiller's, so its state dicts load and a seed gives the same
weights. Only the logits are returned; features are read with forward hooks.

`layer1`, `layer2` and `layer3` end at 1, 1/2 and 1/4 of the input resolution; on 32x32
inputs `layer3` is 8x8, the size of the MobileNetV2 teacher's feature block 9, so its
output is the attention-transfer tap.
"""

from __future__ import annotations

from torch import Tensor, nn

STEM_CHANNELS = 16
STAGE_CHANNELS = (16, 32, 64)
STAGE_STRIDES = (1, 2, 2)


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 conv + BN, ReLU after the first and after the residual sum."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: Tensor) -> Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += residual
        return nn.functional.relu(out)


class CifarResNet(nn.Module):
    """mdistiller's `ResNet` with BasicBlocks, returning logits only."""

    def __init__(self, depth: int, num_filters: tuple[int, int, int, int], num_classes: int = 10) -> None:
        super().__init__()
        n = (depth - 2) // 6
        self.inplanes = num_filters[0]
        self.conv1 = nn.Conv2d(3, num_filters[0], kernel_size=3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(num_filters[0])
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(num_filters[1], n, STAGE_STRIDES[0])
        self.layer2 = self._make_layer(num_filters[2], n, STAGE_STRIDES[1])
        self.layer3 = self._make_layer(num_filters[3], n, STAGE_STRIDES[2])
        # mdistiller has AvgPool2d(8): the same on 32x32 inputs; adaptive also takes other sizes
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(num_filters[3] * BasicBlock.expansion, num_classes)
        self.stage_channels = tuple(num_filters)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        # the shortcut is built before the block, as in mdistiller (same RNG order for a seed)
        downsample = None
        if stride != 1 or self.inplanes != planes * BasicBlock.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * BasicBlock.expansion, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * BasicBlock.expansion),
            )
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * BasicBlock.expansion
        layers += [BasicBlock(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer1(x)  # full resolution (32x32)
        x = self.layer2(x)  # 1/2 (16x16)
        x = self.layer3(x)  # 1/4 (8x8)
        return self.fc(self.avgpool(x).flatten(1))


def build_resnet(depth: int, num_classes: int = 10, width: float = 1.0) -> CifarResNet:
    """ResNet-`depth` for CIFAR; `width` scales the stem and stage channels (16, 32, 64).

    Width 1.0 is mdistiller's resnet8 / resnet14 / resnet20 / ... exactly."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6 != 0:
        raise ValueError(f"resnet depth must be 6n + 2 (8, 14, 20, ...), got {depth}")
    if not width > 0:
        raise ValueError(f"resnet width must be > 0, got {width}")
    stem, *stages = (max(1, round(c * width)) for c in (STEM_CHANNELS, *STAGE_CHANNELS))
    return CifarResNet(depth, (stem, *stages), num_classes)


def at_tap(depth: int) -> tuple[str, int]:
    """Attention transfer matches layer3 (1/4 resolution, 8x8 on 32x32 inputs) with the
    MobileNetV2 teacher's feature block 9 (8x8 too), whatever the depth."""
    return "layer3", 9
