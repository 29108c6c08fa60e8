"""A trained student, loaded from its run folder, ready to score images.

A run folder (results/<dataset>/students/<method>/<student>/f<fraction>/run<r>/) holds the
weights (model.pt) and, in metrics.json's `model` entry, what rebuilds and feeds them
(`StudentSpec`: student id, width, classes, image size, input normalisation). Records and
metrics written before students had ids name the paper's MobileNetV2 by its `drop` N: read
as mobilenetv2-dropN. Runs written before the `model` entry existed (all MobileNetV2s) are
still loaded: the width and class count follow from the weights' shapes, the class names
and image size from the campaign's data.h5, and the inputs are taken to be unnormalised
(students.normalize's default), with a warning saying so.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from igkd import registry
from igkd.architectures import build_student
from igkd.io import InputError, load_torch, read_h5, read_json
from igkd.models import (
    CIFAR_BLOCK_TABLE,
    N_FEATURE_BLOCKS,
    ROUND_NEAREST,
    STEM_CHANNELS,
    load_weights,
    make_divisible,
)
from igkd.training.amp import full_fp32
from igkd.training.loop import EVAL_BATCH

INPUT_CONVENTION = "RGB float32 in [0, 1], shape (N, 3, H, W); normalisation (if any) is applied by the model"
RUN_LAYOUT = "results/<dataset>/students/<method>/<student>/f<fraction>/run<r>/"
DATA_FROM_RUN = 4  # run_dir.parents[4] is results/<dataset>/, where data.h5 lies
# Widths tried, roundest first, when an older run's weights must tell its width: the first
# that gives the weights' channel counts builds exactly the trained architecture.
WIDTH_STEPS = (0.25, 0.05, 0.01, 0.001)
MAX_WIDTH = 4.0


@dataclass(frozen=True)
class StudentSpec:
    """What rebuilds a trained student and feeds it images (metrics.json `model`)."""

    student: str  # an id: mobilenetv2-drop5 (igkd.registry)
    width: float
    classes: tuple[str, ...]
    image_size: int | None  # the training images' side; None: unknown (an older run without its data.h5)
    mean: tuple[float, ...] | None = None  # input normalisation on the [0,1] scale, None: none
    std: tuple[float, ...] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def paper_drop(self) -> int | None:
        """The paper's drop of a MobileNetV2 student, else None (igkd.registry.paper_drop)."""
        return registry.paper_drop(self.student)

    @classmethod
    def of(cls, student: str, width: float, classes, image_size: int, normalize: dict | None) -> StudentSpec:
        """From a run's settings (its student id, students.width, students.normalize) and its data."""
        mean, std = (tuple(normalize["mean"]), tuple(normalize["std"])) if normalize else (None, None)
        return cls(str(student), float(width), tuple(str(c) for c in classes), int(image_size), mean, std)

    def record(self) -> dict:
        """Plain JSON data; `from_record` reads it back."""
        normalize = None if self.mean is None else {"mean": list(self.mean), "std": list(self.std)}
        arch, _ = registry.parse_student(self.student)
        return {
            "student": self.student,
            "architecture": f"{arch.name}: {arch.description}" if arch.description else arch.name,
            "width": self.width,
            "num_classes": self.num_classes,
            "classes": list(self.classes),
            "image_size": self.image_size,
            "input": INPUT_CONVENTION,
            "normalize": normalize,
        }

    @classmethod
    def from_record(cls, record: dict, where: str) -> StudentSpec:
        try:
            normalize = record["normalize"]
            mean, std = (tuple(normalize["mean"]), tuple(normalize["std"])) if normalize else (None, None)
            size = record["image_size"]
            student = record_student(record)
            if student is None:
                raise KeyError("student")
            return cls(
                student,
                float(record["width"]),
                tuple(record["classes"]),
                None if size is None else int(size),
                mean,
                std,
            )
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(f"{where}: `model` entry is not a student description ({err!r})") from err

    def build(self) -> nn.Module:
        return build_student(self.student, self.num_classes, self.width)

    def portable(self, model: nn.Module) -> nn.Sequential:
        """`model` with its normalisation in front: float [0,1] (N,3,H,W) in, logits out. A
        MobileNetV2 is unrolled into plain torch modules, so exports and the state-dict recipe
        rebuild it without igkd; another architecture is kept whole (its own forward)."""
        norm = Standardize(self.mean, self.std) if self.mean is not None else nn.Identity()
        if self.paper_drop is None:
            return nn.Sequential(norm, model)
        return nn.Sequential(norm, model.features, nn.AdaptiveAvgPool2d(1), nn.Flatten(), model.classifier)

    def architecture(self) -> dict:
        """Arguments that rebuild the network: with torchvision for a MobileNetV2
        (docs/use-a-student.md), else igkd's builder for the id's family and size."""
        if self.paper_drop is None:
            arch, size = registry.parse_student(self.student)
            builder = arch.build if isinstance(arch.build, str) else f"{arch.build.__module__}:{arch.build.__name__}"
            return {
                "builder": builder,
                "student": self.student,
                arch.size_name: size,
                "num_classes": self.num_classes,
                "width": self.width,
            }
        blocks = N_FEATURE_BLOCKS - self.paper_drop
        return {
            "builder": "torchvision.models.MobileNetV2",
            "num_classes": self.num_classes,
            "width_mult": self.width,
            "inverted_residual_setting": [list(row) for row in CIFAR_BLOCK_TABLE],
            "stem_stride": 1,
            "feature_blocks": blocks,
            "feature_channels": block_channels(self.width, blocks)[-1],
        }


class Standardize(nn.Module):
    """(x - mean) / std per channel, as torchvision.transforms.Normalize computes it; the
    statistics are not in the state dict (the recipe's Normalize holds none either)."""

    def __init__(self, mean, std) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def block_channels(width: float, blocks: int) -> list[int]:
    """Output channels of the first `blocks` feature blocks at `width` (torchvision's rounding)."""
    channels = [make_divisible(STEM_CHANNELS * width, ROUND_NEAREST)]
    for _, c, n, _ in CIFAR_BLOCK_TABLE:
        channels += [make_divisible(c * width, ROUND_NEAREST)] * n
    return channels[:blocks]


@dataclass(frozen=True, eq=False)
class LoadedStudent:
    """A trained student in eval mode. Call it on images to get logits (N, K): uint8 RGB
    (H,W,3) or (N,H,W,3) (numpy or torch), or float [0,1] (N,3,H,W) tensors/arrays."""

    model: nn.Module  # the trained network: expects normalised float (N,3,H,W)
    net: nn.Sequential  # model with its normalisation in front: float [0,1] in (what export writes)
    spec: StudentSpec
    run_dir: Path

    @property
    def classes(self) -> tuple[str, ...]:
        return self.spec.classes

    @property
    def num_classes(self) -> int:
        return self.spec.num_classes

    @property
    def image_size(self) -> int | None:
        return self.spec.image_size

    @property
    def input_convention(self) -> str:
        return INPUT_CONVENTION

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def inputs(self, images) -> torch.Tensor:
        """`images` as the float [0,1] (N,3,H,W) batch `net` takes, checked."""
        return to_float01(images, self.image_size, f"{self.run_dir}")

    @torch.inference_mode()
    def __call__(self, images) -> torch.Tensor:
        x = self.inputs(images)
        with full_fp32(self.device):
            parts = [self.net(x[lo : lo + EVAL_BATCH].to(self.device)) for lo in range(0, len(x), EVAL_BATCH)]
        return torch.cat(parts)

    def predict(self, images) -> list[str]:
        """The class name of each image's largest logit."""
        return [self.classes[k] for k in self(images).argmax(1).tolist()]


def to_float01(images, image_size: int | None, where: str) -> torch.Tensor:
    """uint8 (H,W,3)/(N,H,W,3) or float [0,1] (N,3,H,W) -> float32 (N,3,H,W) in [0,1]; any
    other shape, dtype or value range is an InputError naming `where` and what was expected."""
    # np.require copies an array torch cannot share (read-only, as np.asarray(PIL image) is)
    x = torch.from_numpy(np.require(images, requirements=("C", "W"))) if isinstance(images, np.ndarray) else images
    if not isinstance(x, torch.Tensor):
        raise InputError(f"{where}: images must be a numpy array or torch tensor, got {type(images).__name__}")
    shape = tuple(x.shape)
    if x.dtype == torch.uint8:
        x = x[None] if x.ndim == 3 else x
        if x.ndim != 4 or x.shape[-1] != 3:
            raise InputError(f"{where}: uint8 images of shape {shape}: expected RGB (H, W, 3) or (N, H, W, 3)")
        x = x.permute(0, 3, 1, 2).float().div(255.0)
    elif x.is_floating_point():
        if x.ndim != 4 or x.shape[1] != 3:
            raise InputError(f"{where}: float images of shape {shape}: expected RGB (N, 3, H, W) in [0, 1]")
        x = x.float()
        low, high = (float(x.min()), float(x.max())) if x.numel() else (0.0, 0.0)
        if not (low >= 0.0 and high <= 1.0):
            raise InputError(
                f"{where}: float images range over [{low:g}, {high:g}]: expected [0, 1] (pass 0-255 pixels as uint8)"
            )
    else:
        raise InputError(f"{where}: images of dtype {x.dtype}: expected uint8 (0-255) or float in [0, 1]")
    if len(x) == 0:
        raise InputError(f"{where}: no images (shape {shape})")
    if image_size is not None and tuple(x.shape[2:]) != (image_size, image_size):
        raise InputError(
            f"{where}: images of {x.shape[2]}x{x.shape[3]} pixels: the student was trained on "
            f"{image_size}x{image_size} (resize them first)"
        )
    return x


def load_student(run_dir, device: str | torch.device = "cpu") -> LoadedStudent:
    """The trained student of a run folder (model.pt + metrics.json), in eval mode on `device`."""
    run_dir = Path(run_dir)
    model_path, metrics_path = run_dir / "model.pt", run_dir / "metrics.json"
    if not (model_path.is_file() and metrics_path.is_file()):
        raise InputError(
            f"{run_dir}: not a student run folder (expected model.pt and metrics.json, as {RUN_LAYOUT} holds)"
        )
    metrics = read_json(metrics_path)
    student = record_student(metrics) if isinstance(metrics, dict) else None
    if student is None:
        raise InputError(f"{metrics_path}: no `student`: not a student run's metrics (a teacher's?)")
    if "model" in metrics:
        spec = StudentSpec.from_record(metrics["model"], str(metrics_path))
    else:
        spec = derived_spec(run_dir, student, load_torch(model_path))
    try:
        model = spec.build()
    except ValueError as err:  # an id of a family this process has not registered (a plugin's)
        raise InputError(f"{metrics_path}: cannot build student {spec.student!r}: {err}") from err
    model = load_weights(model, model_path, f"{spec.student} student of {metrics_path}").eval()
    model.to(device)
    net = spec.portable(model).eval().to(device)
    return LoadedStudent(model, net, spec, run_dir)


def record_student(record: dict) -> str | None:
    """The student id a metrics.json or its `model` entry names: `student`, or (written
    before ids) `drop` N, the paper's MobileNetV2: mobilenetv2-dropN; None if neither."""
    if record.get("student") is not None:
        return str(record["student"])
    if record.get("drop") is not None:
        return registry.mobilenet(int(record["drop"]))
    return None


def derived_spec(run_dir: Path, student: str, state: dict) -> StudentSpec:
    """An older run's spec: width and class count from the weights, names and image size
    from the campaign's data.h5 (when it is there), no input normalisation (warned). Only a
    MobileNetV2's architecture follows from its weights; other families' runs always
    record their `model` entry."""
    where = run_dir / "model.pt"
    drop = registry.paper_drop(student)
    if drop is None:
        raise InputError(
            f"{run_dir}/metrics.json records no `model` entry, and only a MobileNetV2 student's "
            f"width follows from its weights, not {student!r}'s: retrain it to record one"
        )
    if not isinstance(state, dict) or "classifier.weight" not in state:
        raise InputError(f"{where}: no classifier.weight: not a student's state dict")
    num_classes = int(state["classifier.weight"].shape[0])
    width = width_from_weights(state, N_FEATURE_BLOCKS - drop, where)
    data = run_dir.parents[DATA_FROM_RUN] / "data.h5" if len(run_dir.parents) > DATA_FROM_RUN else None
    classes, size = tuple(str(k) for k in range(num_classes)), None
    if data is not None and data.is_file():
        with read_h5(data, "dataset file") as h5:
            names = tuple(str(c) for c in h5.attrs["classes"])
            if len(names) == num_classes:
                classes, size = names, int(h5["train/images"].shape[1])
    warnings.warn(
        f"{run_dir}/metrics.json records no `model` (a run from before it did): width {width} from the "
        f"weights, classes and image size from {data if size else 'nowhere (class numbers used)'}, "
        "inputs taken as unnormalised (students.normalize: null); retrain it to record them",
        stacklevel=3,
    )
    return StudentSpec(student, width, classes, size)


def width_from_weights(state: dict, blocks: int, where) -> float:
    """The roundest width whose architecture has the weights' channel counts per block."""
    found = []
    for index in range(blocks):
        convs = [v for k, v in state.items() if k.startswith(f"features.{index}.") and v.ndim == 4]
        if not convs:
            student = registry.mobilenet(N_FEATURE_BLOCKS - blocks)
            raise InputError(f"{where}: no weights for feature block {index}: not a {student} student")
        found.append(int(convs[-1].shape[0]))
    for step in WIDTH_STEPS:
        for k in range(1, math.floor(MAX_WIDTH / step) + 1):
            width = round(k * step, 6)
            if block_channels(width, blocks) == found:
                return width
    raise InputError(f"{where}: no width up to {MAX_WIDTH} gives the channel counts {found}")
