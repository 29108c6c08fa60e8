"""One training step of each of the paper's eight methods, against the same step written
out by hand from torch primitives and the paper's formulas.

The step runs through `fit_student` (one epoch, one batch holding the whole tiny training
set): precomputed rows -> `Distiller.training_set`, `Distiller.step` (crop + flip, IG
overlay, student and teacher forwards, named losses), the loop's sum of the losses and one
Adam step. The hand version in this file redraws the batch's random numbers from the same
seed, in the order `fit` and `augment_batch` document (the epoch's permutation; then per
batch: overlay exponents, crop offsets, flips, overlay choices), and writes every formula
itself:

- CE on the true label, weight 1 - alpha with KD, else 1;
- KD = alpha T^2 KL(softmax(t/T) || softmax(s/T)) on the precomputed teacher logits of
  the image's own row (no teacher forward for KD);
- AT = gamma * mean((a_s - a_t)^2), a = the L2-normalised, flattened channel mean of the
  squared activations after the paper's block for the drop (9 for L 3/5/7, 4 for 9/11/13,
  2 for 15, 0 for 17), the teacher run live, frozen, in eval mode;
- overlay (IG methods, p forced to 0 or 1): map ** s, s log-uniform in [1, 2], min-max
  scaled, copied to 3 channels, cropped and flipped with its image, x = 0.5 x + 0.5 map;
- the student sees the [0,1] image (students.normalize: null, the paper's setting), the
  teacher (AT only) the same augmented, overlaid image normalised its own way;
- Adam's first step: p - lr * g / (|g| + eps) (bias-corrected moments are g and g^2).

Tolerances: both sides run the same float32 operations on the same CPU, grouped
differently only where the hand formula is written another way (KL from probabilities, the
L2 norm by hand, the overlay's power and scaling per image). That moves inputs and loss
values by a few float32 ulps (eps 1.2e-7; measured here: 1 ulp of the input, 2e-7
relative on a loss), so they are compared at 1e-5 relative (about 100 ulps) and 1e-6
absolute. Gradients pass through up to 16 training-mode BatchNorm layers on a batch of 6,
which amplify those ulps unevenly (up to 2e-3 relative at drop 3), so they are compared
with the hand step run in float64, allowing per tensor 10x the distance of the float32
hand step from it (the rounding of this very computation, measured) plus one ulp of the
tensor's largest gradient; the code's gradients measured within 0.25 of that allowance.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import igkd.training.student as student_stage
from igkd.attribution.precompute import Precomputed
from igkd.data.store import Splits
from igkd.experiments import StudentRecipe, StudentRun
from igkd.models import build_student, build_teacher
from igkd.registry import mobilenet
from igkd.runtime import Runtime
from igkd.training.augment import InputNorm
from igkd.training.methods import PAPER_METHODS, get_method
from igkd.training.teacher import TrainedTeacher

SIZE, N_TRAIN, N_CLASSES = 16, 6, 10
PADDING = 2
ALPHA, TEMPERATURE, GAMMA = 0.01, 2.5, 0.8  # the paper's
POWER_MIN, POWER_MAX, BLEND = 1.0, 2.0, 0.5
LR, ADAM_EPS = 1e-3, 1e-8  # Adam's default eps: the recipe does not set it
RUN = 3  # seed_offset 0 + run 3: the step's seed
TEACHER_MEAN, TEACHER_STD = (0.45, 0.5, 0.4), (0.25, 0.2, 0.3)
# The paper's attention-transfer tap per drop L, written out here (not read from igkd).
PAPER_AT_BLOCK = {3: 9, 5: 9, 7: 9, 9: 4, 11: 4, 13: 4, 15: 2, 17: 0}
RTOL, ATOL = 1e-5, 1e-6  # see the module docstring
FLOAT32_ULP = torch.finfo(torch.float32).eps


def recipe(p: float) -> StudentRecipe:
    return StudentRecipe.from_config(
        {
            "seed_offset": 0,
            "exclude_val": False,
            "width": 0.5,
            "epochs": 1,
            "batch_size": N_TRAIN,  # one step
            "lr": LR,
            "weight_decay": 0.0,
            "crop_padding": PADDING,
            "flip": True,
            "normalize": None,
            "eval_every": 1,
            "control_seed": 0,
            "kd": {"alpha": ALPHA, "temperature": TEMPERATURE},
            "ig": {"attribution": "ig", "p": p, "power_min": POWER_MIN, "power_max": POWER_MAX, "blend": BLEND},
            "at": {"gamma": GAMMA},
        }
    )


@pytest.fixture(scope="module")
def batch():
    """Random images, labels, precomputed teacher logits and positive maps (row i for image i)."""
    rng = np.random.default_rng(0)
    splits = Splits(
        rng.integers(0, 256, (N_TRAIN, SIZE, SIZE, 3), dtype=np.uint8),
        rng.permutation(N_CLASSES)[:N_TRAIN].astype(np.int64),
        rng.integers(0, 256, (2, SIZE, SIZE, 3), dtype=np.uint8),
        np.array([0, 1], dtype=np.int64),
        tuple(str(k) for k in range(N_CLASSES)),
    )
    logits = (3 * rng.standard_normal((N_TRAIN, N_CLASSES))).astype(np.float32)
    maps = rng.uniform(0.05, 1.0, (N_TRAIN, SIZE, SIZE)).astype(np.float32)
    return splits, Precomputed(logits, maps, {})


@pytest.fixture(scope="module")
def teacher():
    """A width-0.25 teacher whose BatchNorm statistics are not the identity (so a teacher
    run in training mode, on batch statistics, gives other features)."""
    torch.manual_seed(7)
    model = build_teacher(N_CLASSES, 0.25)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.2)
            module.running_var.uniform_(0.5, 2.0)
    return TrainedTeacher(model.eval(), InputNorm(TEACHER_MEAN, TEACHER_STD), "teacher", 0)


def run_one_step(method: str, drop: int, p: float, batch, teacher, monkeypatch):
    """fit_student for one step; what the student and teacher received (training calls only)."""
    splits, precomputed = batch
    seen = {"student_inputs": [], "teacher_inputs": [], "teacher_training": [], "initial": None}
    build = student_stage.build_student

    def build_and_watch(*args, **kwargs):
        model = build(*args, **kwargs)
        seen["initial"] = copy.deepcopy(model.state_dict())
        model.register_forward_pre_hook(
            lambda m, args: seen["student_inputs"].append(args[0].detach().clone()) if m.training else None
        )
        return model

    def watch_teacher(module, args):
        seen["teacher_inputs"].append(args[0].detach().clone())
        seen["teacher_training"].append(module.training)

    monkeypatch.setattr(student_stage, "build_student", build_and_watch)
    handle = teacher.model.register_forward_pre_hook(watch_teacher)
    try:
        run = StudentRun(method, mobilenet(drop), 1.0, RUN, recipe(p))
        runtime = Runtime(device="cpu", threads=1, channels_last=False, log=lambda message: None)
        result = student_stage.fit_student(splits, run, teacher, precomputed, runtime)
    finally:
        handle.remove()
    return result, seen


def crop_flip_one(image: torch.Tensor, dy: int, dx: int, flipped: bool) -> torch.Tensor:
    """(C,H,W): the window at (dy, dx) of the zero-padded image, mirrored left-right if flipped."""
    window = F.pad(image, (PADDING,) * 4)[:, dy : dy + SIZE, dx : dx + SIZE]
    return window.flip(-1) if flipped else window


def hand_input(method_name: str, p: float, splits, precomputed, dtype):
    """The batch order and the student's [0,1] input, redrawn from the run's seed."""
    method = get_method(method_name)
    generator = torch.Generator().manual_seed(RUN)
    order = torch.randperm(N_TRAIN, generator=generator)  # fit: the epoch's order
    overlay = method.ig and p > 0
    if overlay:
        u = torch.rand(N_TRAIN, generator=generator).to(dtype)
        powers = POWER_MIN * (POWER_MAX / POWER_MIN) ** u  # log-uniform in [POWER_MIN, POWER_MAX]
    dy = torch.randint(0, 2 * PADDING + 1, (N_TRAIN,), generator=generator)
    dx = torch.randint(0, 2 * PADDING + 1, (N_TRAIN,), generator=generator)
    flipped = torch.rand(N_TRAIN, generator=generator) < 0.5
    chosen = torch.rand(N_TRAIN, generator=generator) < p if overlay else torch.zeros(N_TRAIN, dtype=torch.bool)
    images = torch.from_numpy(splits.train_images).permute(0, 3, 1, 2).to(dtype) / 255
    maps = torch.from_numpy(precomputed.maps).to(dtype)
    rows = []
    for k, i in enumerate(order.tolist()):
        x = crop_flip_one(images[i], int(dy[k]), int(dx[k]), bool(flipped[k]))
        if chosen[k]:
            m = maps[i] ** powers[k]
            m = (m - m.min()) / (m.max() - m.min())
            m = crop_flip_one(m.expand(3, SIZE, SIZE), int(dy[k]), int(dx[k]), bool(flipped[k]))
            x = (1 - BLEND) * x + BLEND * m
        rows.append(x)
    assert bool(chosen.all()) == overlay  # p 1 overlays every image of an IG method, p 0 none
    return order, torch.stack(rows)


def forward_by_hand(model, x: torch.Tensor, block: int | None):
    """Logits and the activation after feature block `block`, block by block."""
    tapped = None
    for index, layer in enumerate(model.features):
        x = layer(x)
        if index == block:
            tapped = x
    return model.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)), tapped


def attention(features: torch.Tensor) -> torch.Tensor:
    a = (features**2).mean(dim=1).reshape(len(features), -1)
    return a / a.pow(2).sum(1, keepdim=True).sqrt()


def hand_step(method_name: str, drop: int, p: float, initial: dict, batch, teacher, dtype=torch.float32):
    """The step by hand in `dtype`: inputs, loss parts, gradients and BatchNorm statistics."""
    splits, precomputed = batch
    method = get_method(method_name)
    order, x01 = hand_input(method_name, p, splits, precomputed, dtype)
    labels = torch.from_numpy(splits.train_labels)[order]
    student = build_student(drop, N_CLASSES, 0.5)
    student.load_state_dict(initial)
    student.to(dtype).train()
    block = PAPER_AT_BLOCK[drop] if method.at else None
    logits, features = forward_by_hand(student, x01, block)  # students see [0,1] images
    alpha = ALPHA if method.kd else 0.0
    losses = {}
    teacher_input = None
    if method.at:
        mean = torch.tensor(TEACHER_MEAN, dtype=dtype).view(1, 3, 1, 1)
        std = torch.tensor(TEACHER_STD, dtype=dtype).view(1, 3, 1, 1)
        teacher_input = (x01 - mean) / std
        with torch.no_grad():
            _, teacher_features = forward_by_hand(copy.deepcopy(teacher.model).to(dtype).eval(), teacher_input, block)
        losses["at"] = GAMMA * ((attention(features) - attention(teacher_features)) ** 2).mean()
    losses["ce"] = (1 - alpha) * F.cross_entropy(logits, labels)
    if method.kd:
        t = torch.from_numpy(precomputed.logits).to(dtype)[order]
        p_t = torch.softmax(t / TEMPERATURE, dim=1)
        kl = (p_t * (p_t.log() - torch.log_softmax(logits / TEMPERATURE, dim=1))).sum(1).mean()
        losses["kd"] = alpha * TEMPERATURE**2 * kl
    sum(losses.values()).backward()
    return {
        "x01": x01,
        "teacher_input": teacher_input,
        "losses": {name: value.item() for name, value in losses.items()},
        "grads": {name: param.grad for name, param in student.named_parameters()},
        "buffers": dict(student.named_buffers()),
    }


def check_step(method: str, drop: int, p: float, batch, teacher, monkeypatch) -> None:
    result, seen = run_one_step(method, drop, p, batch, teacher, monkeypatch)
    hand = hand_step(method, drop, p, seen["initial"], batch, teacher)
    m = get_method(method)

    # inputs: one training forward of the student on the [0,1] (overlaid) batch; the
    # teacher runs only for AT, once, frozen, on that batch normalised its own way
    assert len(seen["student_inputs"]) == 1
    torch.testing.assert_close(seen["student_inputs"][0], hand["x01"], rtol=RTOL, atol=ATOL)
    assert len(seen["teacher_inputs"]) == (1 if m.at else 0)
    if m.at:
        assert seen["teacher_training"] == [False]
        torch.testing.assert_close(seen["teacher_inputs"][0], hand["teacher_input"], rtol=RTOL, atol=ATOL)

    # the loss dict: which parts, and each part's value (the loop records the one step's values)
    recorded = {k.removeprefix("loss_"): v for k, v in result.history[0].items() if k.startswith("loss_")}
    assert set(recorded) == {name for name, on in (("ce", True), ("kd", m.kd), ("at", m.at)) if on}
    for name, value in hand["losses"].items():
        assert math.isclose(recorded[name], value, rel_tol=RTOL), (name, recorded[name], value)

    # gradients (the loop leaves them on the parameters), against the hand step in float64.
    # Allowance per tensor: 10x the float32 rounding of the same hand step, measured (its
    # largest distance from float64), plus one float32 ulp of the tensor's largest gradient.
    exact = hand_step(method, drop, p, seen["initial"], batch, teacher, torch.float64)
    model = result.model
    for name, param in model.named_parameters():
        g = exact["grads"][name]
        rounding = (hand["grads"][name].double() - g).abs().max().item()
        allowance = 10 * rounding + FLOAT32_ULP * g.abs().max().item()
        torch.testing.assert_close(param.grad.double(), g, rtol=0, atol=allowance, msg=name)

        # Adam's first step: p - lr * g / (|g| + eps), as its bias-corrected moments are g
        # and g^2: lr * sign(g) wherever |g| >> eps. Where the exact gradient stands clear
        # of the allowance, the step may differ by what a gradient error of `allowance`
        # makes of it (d/dg of g / (|g| + eps) is eps / (|g| + eps)^2); elsewhere (a bias
        # just before a training-mode BatchNorm has exact gradient 0) Adam promises only a
        # step of at most lr.
        before, after = seen["initial"][name].double(), param.detach().double()
        assert (after - before).abs().max().item() <= LR + ATOL, name
        clear = g.abs() > allowance
        expected = before - LR * g / (g.abs() + ADAM_EPS)
        spread = LR * ADAM_EPS * allowance / (g.abs() - allowance + ADAM_EPS) ** 2
        off = ((after - expected).abs() > ATOL + spread) & clear
        assert not off.any(), f"{name}: Adam's step differs at {off.sum()} of {clear.sum()} entries"
    # BatchNorm running statistics took this batch's (training-mode) statistics
    torch.testing.assert_close(dict(model.named_buffers()), hand["buffers"], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("p", [0.0, 1.0], ids=["overlay_off", "overlay_on"])
@pytest.mark.parametrize("method", PAPER_METHODS)
def test_one_step_matches_the_hand_written_step(method, p, batch, teacher, monkeypatch):
    """Drop 13 (tap at block 4): every method, overlay probability forced off and on."""
    check_step(method, 13, p, batch, teacher, monkeypatch)


@pytest.mark.parametrize("drop", sorted(PAPER_AT_BLOCK))
def test_attention_transfer_taps_the_papers_block_for_each_drop(drop, batch, teacher, monkeypatch):
    """All three parts on, at every drop of the paper's table."""
    check_step("KD_IG_AT", drop, 1.0, batch, teacher, monkeypatch)
