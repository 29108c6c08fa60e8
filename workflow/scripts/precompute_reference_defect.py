"""The reference code's misaligned logits + maps (the reference_defect control), in loader order."""

import torch

from igkd.completeness import format_summary
from igkd.controls import precompute_reference_defect
from igkd.data.store import read_data_h5
from igkd.io import load_torch, read_json, sha256_file
from igkd.models import build_teacher
from igkd.devices import DeviceRequest, claim_device
from igkd.runtime import log_to
from igkd.train import environment

log = log_to(snakemake.log[0])
gpu_slot = claim_device(DeviceRequest.from_runtime(snakemake.config["runtime"], whole_gpu=True, stage="precompute"), log)  # held until the job ends
cfg = snakemake.params.precompute
loader = snakemake.params.loader
attribution = snakemake.wildcards.attribution
torch.set_num_threads(snakemake.threads)
device = gpu_slot.device
splits = read_data_h5(snakemake.input.data)
teacher_metrics = read_json(snakemake.input.metrics)
teacher = build_teacher(len(splits.classes), snakemake.params.teacher_width)
teacher.load_state_dict(load_torch(snakemake.input.model))
teacher.use_channels_last(snakemake.params.channels_last)
summary = precompute_reference_defect(
    teacher,
    splits.train_images,
    splits.train_labels,
    snakemake.output.h5,
    attribution=attribution,
    settings=cfg.get(attribution, {}),
    mean=teacher_metrics["normalize_mean"],
    std=teacher_metrics["normalize_std"],
    provenance={
        "data_checksum": splits.checksum(),
        "teacher_checksum": sha256_file(snakemake.input.model),
    },
    loader_seed=loader["seed"],
    padding=loader["crop_padding"],
    flip=loader["flip"],
    chunk=cfg["chunk"],
    batch=cfg["batch_size"],
    device=device,
    seed=cfg["seed"],
    environment=environment(device, snakemake.threads),
    log=log,
)
log(f"{attribution} (reference_defect): {format_summary(summary)}")
