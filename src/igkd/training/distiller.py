"""One home for a distillation method's training step: the `Distiller`.

A method (igkd.training.methods) switches parts on; the Distiller turns them into a
step. It chooses which precomputed teacher row each training image gets (its own, or a
control's, igkd.controls), augments the batch (crop + flip, and the IG overlay with the
map cropped and flipped like its image), runs the student and returns the named,
weighted losses, summed in order by the training loop (torchdistill's weighted-sum
composition): AT (gamma), CE (1 - alpha with KD, else 1), KD (alpha), then each loss
term a plugin's method adds, under its registered name (weight: students.losses.<name>).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from igkd import registry
from igkd.architectures import forward_with_tap
from igkd.controls import teacher_rows
from igkd.experiments import StudentRecipe
from igkd.training.augment import InputNorm, augment_batch
from igkd.training.loop import TrainSet, to_chw_tensor
from igkd.training.methods import Method


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


@dataclass(frozen=True)
class LossInputs:
    """What a plugin's loss term sees for one batch (igkd.register.loss; docs/extending.md).
    Its value enters the loss dict as weight * fn(inputs) and is summed with the others."""

    logits: torch.Tensor  # the student's, (B, classes)
    labels: torch.Tensor  # (B,)
    inputs: torch.Tensor  # the augmented batch as the student saw it (normalised), (B,3,H,W)
    teacher_logits: torch.Tensor | None  # the precomputed soft-target logits, for methods with KD
    student: nn.Module


@dataclass(frozen=True)
class Overlay:
    """The IG overlay (students.ig): per image with probability p, the map raised to a
    log-uniform power in [power_min, power_max], min-max scaled, blended in with `blend`.
    `above_tolerance`: `use` the maps a refined precompute flagged as above its
    completeness tolerance like any other, or `skip` (never overlay those images)."""

    p: float
    power_min: float
    power_max: float
    blend: float
    above_tolerance: str = "use"

    @classmethod
    def from_config(cls, ig: dict) -> Overlay:
        return cls(ig["p"], ig["power_min"], ig["power_max"], ig["blend"], ig.get("above_tolerance", "use"))


@dataclass(frozen=True)
class Recipe:
    """The students' settings one method's step reads (students.* in the config)."""

    alpha: float  # KD weight; CE gets 1 - alpha
    temperature: float
    gamma: float  # AT weight
    crop_padding: int
    flip: bool
    overlay: Overlay
    norm: InputNorm  # the student's input normalisation
    control_seed: int  # the shuffled_* controls' derangements
    losses: tuple[tuple[str, float], ...] = ()  # plugin loss terms and their weights

    @classmethod
    def from_config(cls, cfg: dict) -> Recipe:
        """From a students section (or the part of it a step reads)."""
        return cls(
            alpha=cfg["kd"]["alpha"],
            temperature=cfg["kd"]["temperature"],
            gamma=cfg["at"]["gamma"],
            crop_padding=cfg["crop_padding"],
            flip=cfg["flip"],
            overlay=Overlay.from_config(cfg["ig"]),
            norm=InputNorm.from_config(cfg.get("normalize")),
            control_seed=cfg["control_seed"],
            losses=tuple((k, float(v)) for k, v in (cfg.get("losses") or {}).items()),
        )

    @classmethod
    def from_student(cls, recipe: StudentRecipe) -> Recipe:
        ig = recipe.ig
        return cls(
            alpha=recipe.kd.alpha,
            temperature=recipe.kd.temperature,
            gamma=recipe.gamma,
            crop_padding=recipe.crop_padding,
            flip=recipe.flip,
            overlay=Overlay(ig.p, ig.power_min, ig.power_max, ig.blend, ig.above_tolerance),
            norm=InputNorm.from_config(recipe.normalize),
            control_seed=recipe.control_seed,
            losses=tuple((k, float(v)) for k, v in recipe.losses.items()),
        )


class Distiller(nn.Module):
    """Student forward + named losses for one method; the teacher stays frozen in eval mode.

    `teacher` (a TrainedTeacher) is needed for attention transfer only: `at_tap` =
    (student module, teacher block) says which outputs are matched (igkd.architectures.
    at_tap), the teacher's normalisation prepares its input.
    """

    def __init__(
        self, student: nn.Module, method: Method, recipe: Recipe, at_tap: tuple[str, int] | None, teacher=None
    ) -> None:
        super().__init__()
        self.student = student
        self.method = method
        self.recipe = recipe
        self.alpha = recipe.alpha if method.kd else 0.0
        self.at_tap = at_tap
        weights = dict(recipe.losses)
        self.terms = [
            (t, weights.get(t, registry.loss(t).weight), registry.resolve(registry.loss(t).fn)) for t in method.losses
        ]
        if method.at and (teacher is None or at_tap is None):
            raise ValueError("attention transfer needs the teacher and the student's tap")
        self.teacher = teacher.model.eval().requires_grad_(False) if method.at else None
        self.teacher_norm = teacher.norm if method.at else None

    def train(self, mode: bool = True):
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def training_set(self, splits, rows: np.ndarray, precomputed, device: str) -> TrainSet:
        """Training rows `rows` on the device, each with the overlay map and soft targets of
        the precompute row the method assigns it (row i itself, or a shuffled control's)."""
        source = teacher_rows(self.method, splits.train_labels, self.recipe.control_seed)
        return TrainSet(
            to_chw_tensor(splits.train_images[rows], device),
            torch.as_tensor(splits.train_labels[rows], device=device),
            torch.as_tensor(precomputed.maps[source.maps[rows]], device=device) if self.method.ig else None,
            torch.as_tensor(precomputed.logits[source.logits[rows]], device=device) if self.method.kd else None,
            self._overlay_p(skipped_maps(self, precomputed, source.maps[rows])),
        )

    def rows_record(self, labels: np.ndarray, rows: np.ndarray, precomputed) -> dict:
        """What metrics.json records about the teacher rows this run's training `rows` got:
        a shuffled control's scope and same-class share (`TeacherRows.record`) and, with a
        refined precompute, the overlay policy and how many maps are above tolerance."""
        source = teacher_rows(self.method, labels, self.recipe.control_seed)
        record = source.record(self.method, rows, labels)
        flags = getattr(precomputed, "above_tolerance", None)
        if not self.method.ig or flags is None:
            return record
        above = int(flags[source.maps[rows]].astype(bool).sum())
        policy = self.recipe.overlay.above_tolerance
        return {
            **record,
            "overlay_above_tolerance": policy,
            "overlay_maps_above_tolerance": above,
            "overlay_maps_skipped": above if policy == "skip" else 0,
        }

    def _overlay_p(self, skipped: np.ndarray | None) -> torch.Tensor | None:
        """Per-row overlay probability: p, and 0 where the map is skipped; None = p everywhere."""
        if skipped is None:
            return None
        return torch.where(torch.as_tensor(skipped, dtype=torch.bool), 0.0, self.recipe.overlay.p).float()

    def step(self, data: TrainSet, batch_rows: torch.Tensor, generator: torch.Generator):
        """One batch: augment (with the overlay for IG methods), forward, losses."""
        overlay = self.recipe.overlay
        overlay_p = overlay.p if self.method.ig else 0.0
        if data.overlay_p is not None:
            overlay_p = data.overlay_p.index_select(0, batch_rows.cpu())
        x01 = augment_batch(  # index_select copies whole rows: ~5x faster than images[rows] here
            data.images.index_select(0, batch_rows),
            data.maps.index_select(0, batch_rows) if self.method.ig else None,
            padding=self.recipe.crop_padding,
            flip=self.recipe.flip,
            overlay_p=overlay_p,
            power_range=(overlay.power_min, overlay.power_max),
            blend=overlay.blend,
            generator=generator,
        )
        labels = data.labels[batch_rows]
        teacher_logits = data.teacher_logits[batch_rows] if self.method.kd else None
        logits, losses = self(x01, labels, teacher_logits)
        return logits, labels, losses

    def forward(self, x01: torch.Tensor, labels: torch.Tensor, teacher_logits: torch.Tensor | None):
        """x01: the augmented batch in [0,1]. Returns student logits and a dict of weighted losses."""
        x = self.recipe.norm(x01)
        losses = {}
        if self.method.at:
            module, block = self.at_tap
            logits, features = forward_with_tap(self.student, module, x)
            with torch.no_grad():
                _, teacher_features = self.teacher(self.teacher_norm(x01), tap=block)
            losses["at"] = self.recipe.gamma * at_loss(features, teacher_features)
        else:
            logits = self.student(x)
        losses["ce"] = (1 - self.alpha) * F.cross_entropy(logits, labels)
        if self.method.kd:
            losses["kd"] = self.alpha * kd_loss(logits, teacher_logits, self.recipe.temperature)
        if self.terms:
            inputs = LossInputs(logits, labels, x, teacher_logits, self.student)
            for name, weight, term in self.terms:
                losses[name] = weight * term(inputs)
        return logits, losses


def skipped_maps(distiller: Distiller, precomputed, map_rows: np.ndarray) -> np.ndarray | None:
    """Bool per training row: its overlay map is flagged above tolerance and
    students.ig.above_tolerance is `skip`. None when nothing is skipped by policy
    (no overlay, `use`, or a precompute without refinement flags)."""
    if not distiller.method.ig or distiller.recipe.overlay.above_tolerance != "skip":
        return None
    flags = getattr(precomputed, "above_tolerance", None)
    return None if flags is None else flags[map_rows].astype(bool)
