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
