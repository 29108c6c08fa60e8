"""Demo stand-in for the external set: this dataset's test split, rotated, as root/<class>/*.png."""

from igkd.data.standin import export_class_folder, rotate_images
from igkd.data.store import read_data_h5
from igkd.runtime import log_to

log = log_to(snakemake.log[0])
splits = read_data_h5(snakemake.input.data)
degrees = snakemake.params.rotation
images = rotate_images(splits.test_images, degrees)
n = export_class_folder(images, splits.test_labels, splits.classes, snakemake.output.root, snakemake.params.description)
log(f"wrote {n} test images rotated by {degrees} degrees to {snakemake.output.root}")
