"""Score the teacher and every student on the external folder (evaluation only)."""

from igkd.data.store import data_attrs
from igkd.evaluate import eval_models, evaluate, load_eval_set
from igkd.io import write_csv
from igkd.devices import DeviceRequest, claim_device
from igkd.runtime import log_to

log = log_to(snakemake.log[0])
gpu_slot = claim_device(DeviceRequest.from_runtime(snakemake.config["runtime"], whole_gpu=False), log)  # held until the job ends
cfg = snakemake.params.external
classes = [str(c) for c in data_attrs(snakemake.input.data)["classes"]]
images, labels = load_eval_set(snakemake.input.root, snakemake.params.image_size, snakemake.input.class_map or None, classes)
log(f"{cfg['description']}: {len(labels)} images from {snakemake.input.root}")
models = eval_models(
    snakemake.input.teacher_model,
    snakemake.input.teacher_metrics,
    snakemake.input.models,
    snakemake.input.metrics,
    snakemake.params.student_norm,
)
results, per_class = evaluate(
    models,
    images,
    labels,
    classes,
    dataset=cfg["description"],
    teacher_width=snakemake.params.teacher_width,
    student_width=snakemake.params.student_width,
    device=gpu_slot.device,
    threads=snakemake.threads,
    channels_last=snakemake.params.channels_last,
    log=log,
)
write_csv(snakemake.output.table, results)
write_csv(snakemake.output.per_class, per_class)
