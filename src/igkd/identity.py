"""What each stage's outputs depend on: its rule's params, exactly.

Snakemake reruns a job when its params change, so a rule's params carry the settings that
change its outputs and nothing else: an edit of a key that only reports, cuts the work into
pieces, picks threads or a lock folder reruns nothing. The student runs' identity lives in
igkd.experiments.StudentRun; this module holds the other stages'. Scripts read the rest
of a section (chunk sizes, report tolerances) from snakemake.config. Each schema key
declares what it reruns (igkd.reruns), and a test walks every key to hold both to this.
Torch-free: the workflow calls it on every dry run.
"""

from __future__ import annotations

from collections.abc import Mapping

from igkd import registry

# precompute.<attribution> keys that change the file's rows, per attribution. Left out:
# report_tolerance (what the log reports), internal_batch_size of ig (points per pass:
# float rounding only).
ATTRIBUTION_KEYS = {
    "ig": ("steps", "method", "tolerance", "max_steps", "rel_floor"),
    "smoothgrad": ("samples", "noise_sd", "internal_batch_size"),  # noise is drawn per pass
    "gradientshap": ("samples", "noise_sd"),
    "saliency": (),
    "random": (),
    "gradcam": ("layer",),
}
# Attributions whose maps are random draws, seeded per batch of images (igkd.attribution.
# precompute): the seed and the batch size change them. The chunk does not (it is rounded
# to whole batches), nor does it for any attribution.
STOCHASTIC = frozenset({"smoothgrad", "gradientshap", "random"})
DRAW_KEYS = ("seed", "batch_size")


def precompute_params(section: Mapping, attribution: str, draws: bool = True) -> dict:
    """The settings of config `precompute` that change `<attribution>.h5` (`draws`: with
    the seed and batch size a noise-based file's draws follow; fig_attributions seeds its
    own, figures.attributions.seed)."""
    entry = registry.attribution(attribution)
    if entry.origin != registry.SHIPPED:  # a plugin's: all its settings, its code, and its draws
        settings = registry.attribution_settings(section, attribution)
        params = {"attribution": attribution, "settings": settings, "plugin": entry.fingerprint}
        return {**params, **({k: section[k] for k in DRAW_KEYS} if draws else {})}
    own = section.get(attribution) or {}
    params = {"attribution": attribution, **{k: own[k] for k in ATTRIBUTION_KEYS.get(attribution, ()) if k in own}}
    if attribution == "ig" and params.get("tolerance") is None:
        params.pop("max_steps", None)  # refines nothing without a tolerance
    if draws and attribution in STOCHASTIC:
        params.update({k: section[k] for k in DRAW_KEYS})
    return params


def prepare_params(dataset: Mapping) -> dict:
    """What data.h5 depends on besides its raw input: name, image size and splits (and
    the digits' test fraction). The raw data are the rule's input, so cifar10.path,
    cifar10.data_dir and imagefolder.root act through it; cifar10.verify only checks
    the raw files."""
    params = {k: dataset[k] for k in ("name", "image_size", "val_fraction", "split_seed")}
    if dataset["name"] == "digits":
        params["test_fraction"] = dataset["digits"]["test_fraction"]
    return params


def teacher_params(teacher: Mapping) -> dict:
    """A trained teacher depends on every training key (the weights file is not read); an
    imported one on its width and input normalisation (the weights file is the input)."""
    if teacher["source"] == "import":
        return {k: teacher[k] for k in ("source", "width", "normalize")}
    return {k: v for k, v in teacher.items() if k != "weights"}
