"""Distillation methods as compositions of three parts: KD (soft targets), IG (overlay
augmentation) and AT (attention transfer). A method switches parts on; the others are off.

Controls are methods too: they keep a part but break its link to the image, so a gain
that survives them is regularisation, not the teacher's knowledge about that image:
`shuffled_*` permute the precomputed rows across images (`*_in_class`: within each class),
`reference_defect` reads rows
made the reference code's way (shuffled, augmented loader), and `<method>@random` blends
in noise maps. Torch-free, so the workflow can ask which inputs a method needs without
importing torch.

Names: a registry name (`KD_IG`), optionally with `@<attribution>` to choose the map
that feeds the overlay (`KD_IG@saliency`, `IG@random`); without a suffix the overlay uses
`students.ig.attribution` (default ig), so the paper's names and paths are unchanged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from igkd import registry

SEPARATOR = "@"
# Precompute variant -> file suffix: results/{ds}/precompute/{attribution}{suffix}.h5.
PRECOMPUTE_VARIANTS = {"aligned": "", "reference_defect": "_reference_defect"}


@dataclass(frozen=True)
class Method:
    kd: bool = False
    ig: bool = False
    at: bool = False
    shuffle_logits: bool = False
    shuffle_maps: bool = False
    shuffle_scope: str = "all"  # a shuffled control's source images: any other ("all") or its own class ("class")
    control: bool = False
    variant: str = "aligned"  # which precompute file: aligned rows, or the reference code's
    attribution: str | None = None  # overlay maps; None = students.ig.attribution
    losses: tuple[str, ...] = ()  # registered loss terms it adds (igkd.register.loss)
    origin: str = registry.SHIPPED  # igkd, or the plugin file that registered it
    fingerprint: str | None = None  # a plugin method's definition (a rule param)

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
    # Controls: same parts, with the teacher's per-image information detached from the image.
    "shuffled_KD": Method(kd=True, shuffle_logits=True, control=True),
    "shuffled_IG": Method(ig=True, shuffle_maps=True, control=True),
    "shuffled_KD_in_class": Method(kd=True, shuffle_logits=True, shuffle_scope="class", control=True),
    "shuffled_IG_in_class": Method(ig=True, shuffle_maps=True, shuffle_scope="class", control=True),
    "reference_defect": Method(kd=True, ig=True, variant="reference_defect", control=True),
}
PAPER_METHODS = ("Student", "KD", "IG", "AT", "KD_IG", "KD_AT", "IG_AT", "KD_IG_AT")
# The three levels of teacher information per part (controls figure and table): aligned
# (row i is image i's), shuffled within class (another image of its class), shuffled
# across classes (any other image).
INFORMATION_LEVELS = {
    "KD": ("KD", "shuffled_KD_in_class", "shuffled_KD"),
    "IG": ("IG", "shuffled_IG_in_class", "shuffled_IG"),
}
LEVEL_NAMES = ("aligned", "shuffled within class", "shuffled across classes")

# What each control tests; used in the controls report (docs/controls.md describes them too).
CONTROL_NOTES = {
    "shuffled_IG": "IG with every image's overlay map taken from another image, of any class (fixed derangement): "
    "does the overlay help because the map belongs to the image or at least to its class?",
    "shuffled_KD": "KD with every image's soft targets taken from another image, of any class (fixed derangement): "
    "do soft targets help because they describe the image or at least its class?",
    "shuffled_IG_in_class": "IG with every image's overlay map taken from another image of the same class "
    "(fixed derangement within each class): does the overlay help because the map belongs to this image?",
    "shuffled_KD_in_class": "KD with every image's soft targets taken from another image of the same class "
    "(fixed derangement within each class): do soft targets help because they describe this image, "
    "beyond what the teacher says about its class?",
    "reference_defect": "KD_IG fed as the reference code fed it: logits and maps computed in two separately "
    "shuffled, crop+flip-augmented passes, then looked up by dataset index (row i's soft targets and map belong "
    "to two other, augmented images)",
    "random": "the overlay blends in uniform noise maps instead of attributions: does any blend regularise?",
}


def split_name(name: str) -> tuple[str, str | None]:
    """'KD_IG@saliency' -> ('KD_IG', 'saliency'); 'KD_IG' -> ('KD_IG', None)."""
    base, sep, attribution = name.partition(SEPARATOR)
    return base, (attribution if sep else None)


def get_method(name: str) -> Method:
    """The method of a (possibly @attribution-suffixed) name; ValueError names what is wrong."""
    base, attribution = split_name(name)
    if base not in METHODS or (attribution and attribution not in registry.ATTRIBUTIONS):
        registry.ensure_plugins()
    if base not in METHODS:
        raise ValueError(f"unknown method {name!r}; expected one of {sorted(METHODS)}, optionally @<attribution>")
    method = METHODS[base]
    if attribution is None:
        return method
    if attribution not in registry.ATTRIBUTIONS:
        known = sorted(registry.ATTRIBUTIONS)
        raise ValueError(f"method {name!r}: unknown attribution {attribution!r}; expected one of {known}")
    if not method.ig:
        raise ValueError(f"method {name!r}: @{attribution} picks the overlay map, and {base} has no overlay")
    control = method.control or registry.ATTRIBUTIONS[attribution].control
    return dataclasses.replace(method, attribution=attribution, control=control)


def plugin_fingerprints(name: str) -> dict[str, str]:
    """Fingerprints of the plugin entries a run of method `name` uses (its definition and
    its loss terms; a plugin attribution reaches it through its precompute file): a rule
    param, so editing them reruns exactly these runs."""
    method = get_method(name)
    found = registry.plugin_fingerprints(("loss", registry.loss(term)) for term in method.losses)
    if method.fingerprint:
        found[f"method {split_name(name)[0]}"] = method.fingerprint
    return found


def is_control(name: str) -> bool:
    return get_method(name).control


def control_note(name: str) -> str:
    """What a control tests ('' for a method that is not a control)."""
    base, attribution = split_name(name)
    if base in CONTROL_NOTES:
        return CONTROL_NOTES[base]
    return CONTROL_NOTES.get(attribution or "", "")


def precompute_stem(name: str, default_attribution: str) -> str | None:
    """Name (without .h5) of the precompute file a method reads, or None if it reads none.

    `KD_IG` -> 'ig' (default), `KD_IG@saliency` -> 'saliency', `reference_defect` ->
    'ig_reference_defect'. Methods with KD but no overlay read the logits of the default
    file (logits are the same teacher outputs in every aligned file).
    """
    method = get_method(name)
    if not method.needs_precompute:
        return None
    return (method.attribution or default_attribution) + PRECOMPUTE_VARIANTS[method.variant]


def all_method_names() -> list[str]:
    """Every valid name: registry names and their @attribution forms (for schema checks)."""
    names = list(METHODS)
    names += [f"{base}{SEPARATOR}{a}" for base, m in METHODS.items() if m.ig for a in registry.ATTRIBUTIONS]
    return names
