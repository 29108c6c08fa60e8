"""One IG map under several power-scaling exponents."""

from igkd.attribution.precompute import load_precomputed_for
from igkd.data.store import read_data_h5
from igkd.io import InputError
from igkd.plots.ig_power import fig_ig_power
from igkd.runtime import log_to

log = log_to(snakemake.log[0])
p = snakemake.params
splits = read_data_h5(snakemake.input.data)
pre = load_precomputed_for(snakemake.input.ig, splits)
if not 0 <= p.row < len(splits.train_labels):
    raise InputError(f"figures.ig_power.row: {p.row} is outside the {len(splits.train_labels)} training images")
label = splits.classes[splits.train_labels[p.row]]
fig_ig_power(
    splits.train_images[p.row],
    pre.maps[p.row],
    p.exponents,
    f"IG map of training image {p.row} (class {label}) raised to the power s",
    snakemake.output.pdf,
    snakemake.output.png,
)
