"""External-set (ImageNet subset) accuracy bars for teacher and students."""

import pandas as pd

from igkd.plots.imagenet import fig_imagenet
from igkd.runtime import log_to

log_to(snakemake.log[0])
fig_imagenet(
    pd.read_csv(snakemake.input.table),
    snakemake.params.methods,
    snakemake.params.title,
    snakemake.output.pdf,
    snakemake.output.png,
    confidence=1 - snakemake.params.alpha,
)
