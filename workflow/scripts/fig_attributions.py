"""A few test images under several captum attributions of the teacher."""

import torch

from igkd.augment import normalize, to_float
from igkd.data.store import read_data_h5
from igkd.io import load_torch, read_json
from igkd.models import build_teacher
from igkd.plots.attributions import attribution_maps, fig_attributions
from igkd.plots.examples import class_examples
from igkd.runtime import log_to
from igkd.train import to_chw_tensor

log = log_to(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
p = snakemake.params
splits = read_data_h5(snakemake.input.data)
rows = class_examples(splits.test_labels, p.examples)
teacher_metrics = read_json(snakemake.input.teacher_metrics)
teacher = build_teacher(len(splits.classes), p.teacher_width)
teacher.load_state_dict(load_torch(snakemake.input.teacher))
x = normalize(to_float(to_chw_tensor(splits.test_images[rows], "cpu")), teacher_metrics["normalize_mean"], teacher_metrics["normalize_std"])
targets = torch.as_tensor(splits.test_labels[rows])
maps = attribution_maps(teacher, x, targets, p.attributions, p.settings, seed=p.seed)
fig_attributions(
    splits.test_images[rows],
    splits.test_labels[rows],
    splits.classes,
    maps,
    "Teacher attributions for the true class (test images)",
    snakemake.output.pdf,
    snakemake.output.png,
)
