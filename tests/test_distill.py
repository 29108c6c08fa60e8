import math

import pytest
import torch
import torch.nn.functional as F

from igkd.models import build_student, build_teacher
from igkd.training.augment import InputNorm
from igkd.training.distiller import Distiller, Recipe, at_loss, attention_map, kd_loss
from igkd.training.methods import METHODS, PAPER_METHODS, get_method
from igkd.training.teacher import TrainedTeacher

RECIPE = {
    "crop_padding": 0,
    "flip": False,
    "ig": {"p": 0.0, "power_min": 1.0, "power_max": 1.0, "blend": 0.5},
    "normalize": None,
    "control_seed": 0,
}
NORM = InputNorm((0.5,) * 3, (0.25,) * 3)


def test_kd_loss_matches_formula():
    s, t = torch.randn(4, 10), torch.randn(4, 10)
    temp = 2.5
    p_t = F.softmax(t / temp, 1)
    manual = (p_t * (p_t.log() - F.log_softmax(s / temp, 1))).sum(1).mean() * temp**2
    assert torch.allclose(kd_loss(s, t, temp), manual, atol=1e-6)
    assert kd_loss(t, t, temp).abs() < 1e-6


def test_attention_map_is_unit_norm_channel_mean_of_squares():
    f = torch.randn(3, 8, 4, 4)
    a = attention_map(f)
    assert a.shape == (3, 16)
    assert torch.allclose(a.norm(dim=1), torch.ones(3))
    expected = f.pow(2).mean(1).flatten(1)
    assert torch.allclose(a, expected / expected.norm(dim=1, keepdim=True))
    assert at_loss(f, f) == 0


def test_method_registry_is_the_paper_grid():
    assert set(PAPER_METHODS) <= set(METHODS)
    for name in PAPER_METHODS:
        m = get_method(name)
        assert (m.kd, m.ig, m.at) == ("KD" in name, "IG" in name, "AT" in name)
        assert not m.control
    with pytest.raises(ValueError, match="unknown method 'KDX'"):
        get_method("KDX")


def test_distiller_losses_per_method():
    torch.manual_seed(0)
    x, y = torch.rand(4, 3, 16, 16), torch.randint(0, 10, (4,))
    t_logits = torch.randn(4, 10)
    teacher = build_teacher(width=0.25).eval()
    for name in PAPER_METHODS:
        recipe = Recipe.from_config({**RECIPE, "kd": {"alpha": 0.01, "temperature": 2.5}, "at": {"gamma": 0.8}})
        d = Distiller(
            build_student(13), get_method(name), recipe, ("features.4", 4), TrainedTeacher(teacher, NORM, "t", 0)
        )
        logits, losses = d(x, y, t_logits)
        assert logits.shape == (4, 10)
        assert ("kd" in losses) == ("KD" in name) and ("at" in losses) == ("AT" in name)
        ce = F.cross_entropy(logits, y)
        weight = 0.99 if "KD" in name else 1.0
        assert math.isclose(losses["ce"].item(), weight * ce.item(), rel_tol=1e-5)


def test_teacher_stays_frozen_in_eval_mode():
    teacher = build_teacher(width=0.25)
    recipe = Recipe.from_config({**RECIPE, "kd": {"alpha": 0, "temperature": 1}, "at": {"gamma": 1}})
    d = Distiller(
        build_student(13),
        get_method("AT"),
        recipe,
        ("features.4", 4),
        TrainedTeacher(teacher, InputNorm((0,) * 3, (1,) * 3), "t", 0),
    )
    d.train()
    assert not d.teacher.training
    assert not any(p.requires_grad for p in d.teacher.parameters())
