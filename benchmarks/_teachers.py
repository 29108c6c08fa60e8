"""The teachers and images the IG benchmarks integrate over.

- `cifar`: the CIFAR MobileNetV2 teacher (width 1.0) at 32x32. No CIFAR-10 copy is
  assumed, so by default it is briefly trained (a few SGD steps) on scikit-learn's real
  digits resized to 32x32 RGB, and IG runs on those digits: the logits then depend on the
  image, which an untrained network's hardly do. The brief training is cached under
  benchmarks/out/. Completeness errors depend on the weights: treat them as those of a
  partly trained network, not of the paper's teacher.
- `digits`: the demo's trained teacher (results/digits/teacher/model.pt, its width from metrics.json,
  16x16) on the demo's own training images (results/digits/data.h5).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from _common import OUT_DIR

from igkd.data.digits import load_digits_splits
from igkd.data.store import channel_stats, read_data_h5
from igkd.io import load_torch, read_json, save_torch
from igkd.models import build_teacher
from igkd.training.augment import normalize, to_float

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(REPO, "results", "digits")
BRIEF = {"steps": 30, "batch": 64, "lr": 0.05, "seed": 0}  # the cifar teacher's brief training


@dataclass
class Case:
    name: str
    teacher: torch.nn.Module  # eval mode, contiguous (NCHW) layout
    images: np.ndarray  # uint8 (N,H,W,3)
    labels: np.ndarray
    mean: list
    std: list
    about: str

    def batch(self, rows: slice, device: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised float inputs and int64 targets of `rows`, on the device."""
        x = to_float(torch.from_numpy(self.images[rows]).permute(0, 3, 1, 2).contiguous()).to(device)
        return normalize(x, self.mean, self.std), torch.as_tensor(self.labels[rows], device=device)


def load_case(name: str, weights: str = "brief", log=print) -> Case:
    if name == "cifar":
        return _cifar_case(weights, log)
    if name == "digits":
        return _digits_case()
    raise SystemExit(f"unknown case {name!r}; expected cifar or digits")


def _cifar_case(weights: str, log) -> Case:
    splits = load_digits_splits(32, 0.2, 0)
    mean, std = (list(map(float, v)) for v in channel_stats(splits.train_images))
    teacher = build_teacher(10, 1.0)
    if weights == "random":
        about = "CIFAR MobileNetV2 width 1.0, 32x32, untrained"
    elif weights == "brief":
        path = os.path.join(OUT_DIR, "cifar_teacher_brief_{steps}x{batch}_lr{lr}_s{seed}.pt".format(**BRIEF))
        if not os.path.exists(path):
            log(f"training the width-1.0 teacher briefly ({BRIEF}) on digits at 32x32 -> {path}")
            _brief_train(teacher, splits.train_images, splits.train_labels, mean, std)
            save_torch(path, teacher.state_dict())
        teacher.load_state_dict(load_torch(path))
        about = f"CIFAR MobileNetV2 width 1.0, 32x32, {BRIEF['steps']} SGD steps on digits at 32x32"
    else:
        teacher.load_state_dict(load_torch(weights))
        about = f"CIFAR MobileNetV2 width 1.0, 32x32, weights {weights}"
    order = np.random.default_rng(1).permutation(len(splits.train_labels))  # classes mixed in every batch
    images, labels = splits.train_images[order], splits.train_labels[order]
    return Case("cifar", teacher.eval(), images, labels, mean, std, about + "; digits 32x32 RGB images")


def _brief_train(teacher, images, labels, mean, std) -> None:
    torch.manual_seed(BRIEF["seed"])
    generator = torch.Generator().manual_seed(BRIEF["seed"])
    optimizer = torch.optim.SGD(teacher.parameters(), lr=BRIEF["lr"], momentum=0.9)
    x_all = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    y_all = torch.from_numpy(labels)
    teacher.train()
    for _ in range(BRIEF["steps"]):
        rows = torch.randint(0, len(y_all), (BRIEF["batch"],), generator=generator)
        loss = F.cross_entropy(teacher(normalize(to_float(x_all[rows]), mean, std)), y_all[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    teacher.eval()


def _digits_case() -> Case:
    model, metrics, data = (os.path.join(DEMO, p) for p in ("teacher/model.pt", "teacher/metrics.json", "data.h5"))
    missing = [p for p in (model, metrics, data) if not os.path.exists(p)]
    if missing:
        raise SystemExit(f"digits case needs the demo's outputs; missing {missing} (run the demo first)")
    facts = read_json(metrics)
    splits = read_data_h5(data)
    teacher = build_teacher(len(splits.classes), facts["width"])
    teacher.load_state_dict(load_torch(model))
    size = splits.train_images.shape[1]
    about = f"demo teacher (trained, test acc {facts['test_acc']:.1f} %), width {facts['width']}, {size}x{size}"
    return Case(
        "digits",
        teacher.eval(),
        splits.train_images,
        splits.train_labels,
        facts["normalize_mean"],
        facts["normalize_std"],
        about + "; the demo's training images",
    )
