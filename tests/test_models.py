import pytest
import torch

from igkd.models import (
    AT_BLOCK_BY_DROP,
    at_block,
    build_student,
    build_teacher,
    compression_factor,
    multiply_adds,
    n_params,
)

# docs/method.md: drop L -> (params, factor, last channels)
PAPER_STUDENTS = {
    3: (1_019_402, 2.19, 160),
    5: (543_498, 4.12, 96),
    7: (306_954, 7.29, 96),
    9: (185_738, 12.04, 64),
    11: (77_194, 28.97, 64),
    13: (40_970, 54.59, 32),
    15: (16_042, 139.43, 24),
    17: (1_994, 1121.71, 16),
}


def test_teacher_matches_paper():
    teacher = build_teacher()
    assert n_params(teacher) == 2_236_682
    assert len(teacher.features) == 19
    # about 88 M multiply-adds per 32x32 image
    assert 85e6 < multiply_adds(teacher, 32) < 91e6
    assert teacher(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_teacher_ends_at_4x4():
    _, features = build_teacher()(torch.zeros(1, 3, 32, 32), tap=18)
    assert features.shape == (1, 1280, 4, 4)


@pytest.mark.parametrize("drop", sorted(PAPER_STUDENTS))
def test_students_match_paper(drop):
    params, factor, channels = PAPER_STUDENTS[drop]
    student = build_student(drop)
    assert n_params(student) == params
    assert round(compression_factor(drop), 2) == factor
    assert student.classifier.in_features == channels
    assert not any(isinstance(m, torch.nn.Dropout) for m in student.modules())


@pytest.mark.parametrize("drop", sorted(AT_BLOCK_BY_DROP))
def test_attention_tap_shapes_agree(drop):
    x = torch.randn(2, 3, 32, 32)
    block = at_block(drop)
    _, t = build_teacher(width=0.25)(x, tap=block)
    _, s = build_student(drop)(x, tap=block)
    assert t.shape[-2:] == s.shape[-2:]


def test_at_block_outside_table_is_inside_student():
    for drop in range(1, 19):
        assert at_block(drop) < 19 - drop


def test_bad_drop_rejected():
    with pytest.raises(ValueError, match="drop must lie in 1..18"):
        build_student(19)


def _torchvision_reference(drop: int | None, width: float, seed: int) -> tuple[torch.nn.Module, torch.Tensor]:
    """The teacher (drop None) or student as igkd built it from torchvision's MobileNetV2
    before igkd.models held a copy of its layers, and the next draw of the seeded generator."""
    from torchvision.models.mobilenetv2 import MobileNetV2

    from igkd.models import CIFAR_BLOCK_TABLE, N_FEATURE_BLOCKS, TEACHER_DROPOUT

    torch.manual_seed(seed)
    net = MobileNetV2(
        num_classes=10, width_mult=width, inverted_residual_setting=CIFAR_BLOCK_TABLE, dropout=TEACHER_DROPOUT
    )
    net.features[0][0].stride = (1, 1)
    if drop is None:
        model = torch.nn.Sequential()
        model.features, model.classifier = net.features, net.classifier
    else:
        features = net.features[: N_FEATURE_BLOCKS - drop]
        channels = [m for m in features[-1].modules() if isinstance(m, torch.nn.Conv2d)][-1].out_channels
        model = torch.nn.Sequential()
        model.features, model.classifier = features, torch.nn.Linear(channels, 10)
    return model, torch.rand(4)


@pytest.mark.parametrize(("drop", "width"), [(None, 1.0), (None, 0.5), (13, 0.5), (7, 0.5), (5, 1.0), (17, 0.25)])
def test_models_are_torchvisions_layer_for_layer_and_weight_for_weight(drop, width):
    """igkd.models copies torchvision's layers so a job need not import torchvision: the
    same seed must give the same module tree, parameter names, weights, buffers, generator
    state afterwards and outputs, so checkpoints and seeded runs stay exactly as they were."""
    reference, next_draw = _torchvision_reference(drop, width, seed=7)
    torch.manual_seed(7)
    model = build_teacher(10, width) if drop is None else build_student(drop, 10, width)
    assert torch.equal(torch.rand(4), next_draw)
    ours, theirs = model.state_dict(), reference.state_dict()
    assert list(ours) == list(theirs)
    for key in theirs:
        assert torch.equal(ours[key], theirs[key]), key
    assert repr(model.features) == repr(reference.features)
    assert repr(model.classifier) == repr(reference.classifier)
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    reference.eval()
    with torch.no_grad():
        pooled = torch.flatten(torch.nn.functional.adaptive_avg_pool2d(reference.features(x), 1), 1)
        assert torch.equal(model(x), reference.classifier(pooled))
