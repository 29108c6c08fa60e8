"""The losses of the distillation methods and the module that combines them for a method."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from igkd.augment import normalize
from igkd.methods import Method


def kd_loss(student_logits, teacher_logits, temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(t/T) || softmax(s/T)), averaged over the batch (Hinton et al.)."""
    return (
        F.kl_div(
            F.log_softmax(student_logits / temperature, dim=1),
            F.log_softmax(teacher_logits / temperature, dim=1),
            reduction="batchmean",
            log_target=True,
        )
        * temperature**2
    )


def attention_map(features: torch.Tensor) -> torch.Tensor:
    """L2-normalised, flattened channel mean of squared activations (Zagoruyko & Komodakis)."""
    return F.normalize(features.pow(2).mean(1).flatten(1), dim=1)


def at_loss(student_features, teacher_features) -> torch.Tensor:
    return (attention_map(student_features) - attention_map(teacher_features)).pow(2).mean()


class Distiller(nn.Module):
    """Student forward + named losses for one method; the teacher stays frozen in eval mode."""

    def __init__(
        self,
        student: nn.Module,
        method: Method,
        *,
        alpha: float,
        temperature: float,
        gamma: float,
        at_block: int,
        teacher: nn.Module | None = None,
        teacher_mean=None,
        teacher_std=None,
        student_mean=None,
        student_std=None,
    ) -> None:
        super().__init__()
        self.student = student
        self.method = method
        self.alpha = alpha if method.kd else 0.0
        self.temperature = temperature
        self.gamma = gamma
        self.at_block = at_block
        if method.at and teacher is None:
            raise ValueError("attention transfer needs the teacher")
        self.teacher = teacher.eval().requires_grad_(False) if method.at else None
        self.teacher_norm = (teacher_mean, teacher_std)
        self.student_norm = (student_mean, student_std)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def forward(self, x01: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor | None):
        """x01: the augmented batch in [0,1]. Returns student logits and a dict of weighted losses."""
        x = normalize(x01, *self.student_norm) if self.student_norm[0] is not None else x01
        losses = {}
        if self.method.at:
            logits, features = self.student(x, tap=self.at_block)
            with torch.no_grad():
                _, teacher_features = self.teacher(normalize(x01, *self.teacher_norm), tap=self.at_block)
            losses["at"] = self.gamma * at_loss(features, teacher_features)
        else:
            logits = self.student(x)
        losses["ce"] = (1 - self.alpha) * F.cross_entropy(logits, labels)
        if self.method.kd:
            losses["kd"] = self.alpha * kd_loss(logits, teacher_logits, self.temperature)
        return logits, losses
