"""A few test images under several attributions of the teacher (igkd's and plugins')."""

import torch

from igkd.attribution.precompute import attribution_settings
from igkd.data.store import read_data_h5
from igkd.plots.attributions import attribution_maps, fig_attributions
from igkd.plots.examples import Examples, class_examples
from igkd.plugins import load_from_config
from igkd.runtime import log_to
from igkd.training.loop import to_chw_tensor
from igkd.training.teacher import load_trained_teacher

log = log_to(snakemake.log[0])
load_from_config(snakemake.config)  # a plugin's attributions (once per process)
torch.set_num_threads(snakemake.threads)
p = snakemake.params
splits = read_data_h5(snakemake.input.data)
rows = class_examples(splits.test_labels, p.examples)
teacher = load_trained_teacher(
    snakemake.input.teacher_model,
    snakemake.input.teacher_metrics,
    num_classes=len(splits.classes),
    width=p.teacher_width,
)
x = teacher.norm.prepare(to_chw_tensor(splits.test_images[rows], "cpu"))
targets = torch.as_tensor(splits.test_labels[rows])
# params.settings hold what changes the maps; the attributions run with their settings whole, as the
# precompute's: config precompute.<name>, a plugin's defaults merged with precompute.plugin_settings.<name>
settings = {a: attribution_settings(snakemake.config["precompute"], a) for a in p.attributions}
maps = attribution_maps(teacher.model, x, targets, p.attributions, settings, seed=p.seed)
fig_attributions(
    Examples(splits.test_images[rows], splits.test_labels[rows], splits.classes),
    maps,
    "Teacher attributions for the true class (test images)",
    snakemake.output.pdf,
    snakemake.output.png,
)
