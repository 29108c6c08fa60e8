"""Download the CIFAR-10 python archive (md5-checked, resumable)."""

from pathlib import Path

from igkd.data.cifar10 import download_cifar10
from igkd.runtime import log_to

log_to(snakemake.log[0])
download_cifar10(Path(snakemake.output[0]).parent)
