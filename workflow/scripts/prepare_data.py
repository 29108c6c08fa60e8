"""Raw dataset -> results/{ds}/data.h5."""

from igkd import __version__
from igkd.data.prepare import load_source
from igkd.data.store import write_data_h5
from igkd.runtime import log_to

log = log_to(snakemake.log[0])
dataset = snakemake.config["dataset"]  # params.dataset: the part that changes data.h5 (igkd.identity)
splits = load_source(dataset, snakemake.input.raw or None)
write_data_h5(
    snakemake.output.data,
    splits,
    {"dataset": dataset["name"], "image_size": dataset["image_size"], "igkd_version": __version__},
)
log(
    f"{dataset['name']}: {len(splits.train_labels)} train ({len(splits.val_index)} held out for validation), "
    f"{len(splits.test_labels)} test images of {splits.train_images.shape[1:]}, {len(splits.classes)} classes"
)
