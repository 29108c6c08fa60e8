"""Distillation methods as compositions of three parts: KD (soft targets), IG (overlay
augmentation) and AT (attention transfer). A method switches parts on; the others are off.

Controls are methods too: they keep a part but break its link to the image
(`shuffled_*` permute the precomputed rows across images). Torch-free, so the workflow
can ask which inputs a method needs without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    kd: bool = False
    ig: bool = False
    at: bool = False
    shuffle_logits: bool = False
    shuffle_maps: bool = False
    control: bool = False

    @property
    def needs_teacher_online(self) -> bool:
        return self.at

    @property
    def needs_precompute(self) -> bool:
        return self.kd or self.ig


METHODS: dict[str, Method] = {
    "Student": Method(),
    "KD": Method(kd=True),
    "IG": Method(ig=True),
    "AT": Method(at=True),
    "KD_IG": Method(kd=True, ig=True),
    "KD_AT": Method(kd=True, at=True),
    "IG_AT": Method(ig=True, at=True),
    "KD_IG_AT": Method(kd=True, ig=True, at=True),
    # Controls: same parts, with the teacher's per-image information permuted across images.
    "shuffled_KD": Method(kd=True, shuffle_logits=True, control=True),
    "shuffled_IG": Method(ig=True, shuffle_maps=True, control=True),
}
PAPER_METHODS = ("Student", "KD", "IG", "AT", "KD_IG", "KD_AT", "IG_AT", "KD_IG_AT")


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; expected one of {sorted(METHODS)}")
    return METHODS[name]
