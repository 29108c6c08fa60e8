"""One training image per class: original, IG map, overlaid image."""

from igkd.attribution.precompute import load_precomputed_for
from igkd.data.store import read_data_h5
from igkd.plots.examples import class_examples
from igkd.plots.ig_overlay import fig_ig_overlay
from igkd.runtime import log_to

log = log_to(snakemake.log[0])
p = snakemake.params
splits = read_data_h5(snakemake.input.data)
pre = load_precomputed_for(snakemake.input.ig, splits)
rows = class_examples(splits.train_labels)
log(f"training rows shown: {rows.tolist()}")
fig_ig_overlay(
    splits.train_images[rows],
    pre.maps[rows],
    splits.train_labels[rows],
    splits.classes,
    p.exponent,
    p.blend,
    snakemake.output.pdf,
    snakemake.output.png,
)
