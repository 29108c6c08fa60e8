"""The CIFAR ResNet students (igkd.architectures.resnet_cifar) against mdistiller's resnet8/14/20."""

import ast
import inspect

import pytest
import torch

from igkd.architectures import resnet_cifar
from igkd.architectures.resnet_cifar import build_resnet

# mdistiller's counts: sum(p.numel()) of resnet8(), resnet14(), resnet20() (num_classes=10) from
# megvii-research/mdistiller mdistiller/models/cifar/resnet.py (commit e8c5bb3), run once outside the repo.
# Papers quote 0.08M / 0.17M / 0.27M: He et al.'s option-A (parameter-free) shortcuts, which have
# 2752 parameters fewer (the two 1x1 conv + BN projections), e.g. 172506 for ResNet-14.
MDISTILLER_PARAMS = {8: 78042, 14: 175258, 20: 272474}
QUOTED_MILLIONS = {8: 0.08, 14: 0.17, 20: 0.27}
PROJECTION_PARAMS = (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)
# len(state_dict()) of mdistiller's resnet8 / resnet14 / resnet20
MDISTILLER_STATE_ENTRIES = {8: 56, 14: 92, 20: 128}

# mdistiller's resnet8(num_classes=10).state_dict(), in order: convs and the linear layer by shape,
# BatchNorm2d by channel count (weight, bias, running_mean, running_var, num_batches_tracked).
MDISTILLER_RESNET8 = [
    ("conv1.weight", (16, 3, 3, 3)),
    ("bn1", 16),
    ("layer1.0.conv1.weight", (16, 16, 3, 3)),
    ("layer1.0.bn1", 16),
    ("layer1.0.conv2.weight", (16, 16, 3, 3)),
    ("layer1.0.bn2", 16),
    ("layer2.0.conv1.weight", (32, 16, 3, 3)),
    ("layer2.0.bn1", 32),
    ("layer2.0.conv2.weight", (32, 32, 3, 3)),
    ("layer2.0.bn2", 32),
    ("layer2.0.downsample.0.weight", (32, 16, 1, 1)),
    ("layer2.0.downsample.1", 32),
    ("layer3.0.conv1.weight", (64, 32, 3, 3)),
    ("layer3.0.bn1", 64),
    ("layer3.0.conv2.weight", (64, 64, 3, 3)),
    ("layer3.0.bn2", 64),
    ("layer3.0.downsample.0.weight", (64, 32, 1, 1)),
    ("layer3.0.downsample.1", 64),
    ("fc.weight", (10, 64)),
    ("fc.bias", (10,)),
]


def mdistiller_resnet8_shapes() -> dict[str, tuple[int, ...]]:
    shapes = {}
    for name, shape in MDISTILLER_RESNET8:
        if isinstance(shape, int):
            for entry in ("weight", "bias", "running_mean", "running_var"):
                shapes[f"{name}.{entry}"] = (shape,)
            shapes[f"{name}.num_batches_tracked"] = ()
        else:
            shapes[name] = shape
    return shapes


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("depth", [8, 14, 20])
def test_parameter_counts_are_mdistillers(depth):
    params = n_params(build_resnet(depth, num_classes=10))
    assert params == MDISTILLER_PARAMS[depth]
    assert abs(params / 1e6 - QUOTED_MILLIONS[depth]) < 0.006
    assert round((params - PROJECTION_PARAMS) / 1e6, 2) == QUOTED_MILLIONS[depth]


@pytest.mark.parametrize("depth", [8, 14, 20])
def test_state_dict_entries_match_mdistiller(depth):
    assert len(build_resnet(depth).state_dict()) == MDISTILLER_STATE_ENTRIES[depth]


def test_loads_a_state_dict_with_mdistillers_names_and_shapes():
    """A state dict laid out as mdistiller's resnet8 saves it loads strictly, in mdistiller's key order."""
    model = build_resnet(8)
    expected = mdistiller_resnet8_shapes()
    assert [(k, tuple(v.shape)) for k, v in model.state_dict().items()] == list(expected.items())
    generator = torch.Generator().manual_seed(0)
    saved = {
        k: torch.tensor(5) if not shape else torch.rand(shape, generator=generator) + 0.5
        for k, shape in expected.items()
    }
    model.load_state_dict(saved, strict=True)
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("size", [32, 16])
def test_logits_shape_and_stage_resolutions(size):
    model = build_resnet(8).eval()
    sizes = {}
    for name in ("layer1", "layer2", "layer3"):
        getattr(model, name).register_forward_hook(
            lambda module, inputs, output, name=name: sizes.__setitem__(name, tuple(output.shape[2:]))
        )
    with torch.no_grad():
        logits = model(torch.randn(2, 3, size, size))
    assert isinstance(logits, torch.Tensor)
    assert logits.shape == (2, 10)
    assert sizes == {"layer1": (size, size), "layer2": (size // 2, size // 2), "layer3": (size // 4, size // 4)}


def test_layer3_on_32x32_is_8x8_with_64_channels():
    """The attention-transfer tap: 8x8 like the MobileNetV2 teacher's feature block 9."""
    model = build_resnet(20).eval()
    out = {}
    model.layer3.register_forward_hook(lambda module, inputs, output: out.setdefault("x", output))
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
    assert out["x"].shape == (1, 64, 8, 8)


@pytest.mark.parametrize("depth", [0, 2, 7, 9, 10, 21, -4])
def test_bad_depth_raises(depth):
    with pytest.raises(ValueError, match=rf"^resnet depth must be 6n \+ 2 \(8, 14, 20, \.\.\.\), got {depth}$"):
        build_resnet(depth)


def test_width_scales_channels_and_parameters():
    half = build_resnet(8, width=0.5)
    assert n_params(half) < n_params(build_resnet(8))
    assert half.conv1.out_channels == 8
    assert [half.layer1[0].conv2.out_channels, half.layer2[0].conv2.out_channels, half.fc.in_features] == [8, 16, 32]
    assert build_resnet(8, width=0.01).conv1.out_channels == 1
    assert build_resnet(8, width=0.5)(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_num_classes_sets_the_linear_layer():
    model = build_resnet(14, num_classes=100)
    assert model.fc.out_features == 100
    assert n_params(model) == MDISTILLER_PARAMS[14] + 90 * 65


def test_initialisation_is_mdistillers():
    """kaiming_normal_(fan_out, relu) for convs; BatchNorm weight 1, bias 0."""
    torch.manual_seed(0)
    model = build_resnet(20)
    conv = model.layer3[1].conv2
    fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
    assert conv.weight.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.05)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            assert torch.equal(m.weight, torch.ones_like(m.weight))
            assert torch.equal(m.bias, torch.zeros_like(m.bias))


def test_module_does_not_import_torchvision():
    tree = ast.parse(inspect.getsource(resnet_cifar))
    imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    imported += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert not [name for name in imported if name.split(".")[0] == "torchvision"]
