"""Teacher vs trained students' attention maps on a few test images."""

import torch

from igkd.augment import normalize, to_float
from igkd.data.store import read_data_h5
from igkd.io import load_torch, read_json
from igkd.models import at_block, build_student, build_teacher
from igkd.plots.attention import attention_maps, fig_attention
from igkd.plots.examples import class_examples
from igkd.runtime import log_to
from igkd.train import to_chw_tensor

log = log_to(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
p = snakemake.params
splits = read_data_h5(snakemake.input.data)
k = len(splits.classes)
rows = class_examples(splits.test_labels, p.examples)
x01 = to_float(to_chw_tensor(splits.test_images[rows], "cpu"))
teacher_metrics = read_json(snakemake.input.teacher_metrics)
teacher = build_teacher(k, p.teacher_width)
teacher.load_state_dict(load_torch(snakemake.input.teacher))
block = at_block(p.drop)
teacher_maps = attention_maps(teacher, normalize(x01, teacher_metrics["normalize_mean"], teacher_metrics["normalize_std"]), block)
student_x = normalize(x01, p.student_normalize["mean"], p.student_normalize["std"]) if p.student_normalize else x01
student_maps = {}
for method, path in zip(p.methods, snakemake.input.students):
    student = build_student(p.drop, k, p.student_width)
    student.load_state_dict(load_torch(path))
    student_maps[method] = attention_maps(student, student_x, block)
fig_attention(
    splits.test_images[rows],
    splits.test_labels[rows],
    splits.classes,
    teacher_maps,
    student_maps,
    block,
    f"Attention after block {block}: teacher vs students (drop {p.drop}, run {p.run}), test images",
    snakemake.output.pdf,
    snakemake.output.png,
)
