"""Teacher vs trained students' attention maps on a few test images."""

import torch

from igkd.architectures import at_tap, build_student
from igkd.data.store import read_data_h5
from igkd.models import load_weights
from igkd.plots.attention import attention_maps, fig_attention
from igkd.plots.examples import Examples, class_examples
from igkd.plugins import load_from_config
from igkd.runtime import log_to
from igkd.training.augment import InputNorm, to_float
from igkd.training.loop import to_chw_tensor
from igkd.training.teacher import load_trained_teacher

log = log_to(snakemake.log[0])
load_from_config(snakemake.config)
torch.set_num_threads(snakemake.threads)
p = snakemake.params
splits = read_data_h5(snakemake.input.data)
k = len(splits.classes)
rows = class_examples(splits.test_labels, p.examples)
x01 = to_float(to_chw_tensor(splits.test_images[rows], "cpu"))
teacher = load_trained_teacher(
    snakemake.input.teacher_model, snakemake.input.teacher_metrics, num_classes=k, width=p.teacher_width
)
module, block = at_tap(p.student)
teacher_maps = attention_maps(teacher.model, teacher.norm(x01), block)
student_x = InputNorm.from_config(p.student_normalize)(x01)
student_maps = {}
for method, path in zip(p.methods, snakemake.input.students):
    student = load_weights(build_student(p.student, k, p.student_width), path, f"{p.student} student")
    student_maps[method] = attention_maps(student, student_x, module)
fig_attention(
    Examples(splits.test_images[rows], splits.test_labels[rows], splits.classes),
    teacher_maps,
    student_maps,
    block,
    f"Attention after teacher block {block} / student {module}: {p.student}, run {p.run}, test images",
    snakemake.output.pdf,
    snakemake.output.png,
)
