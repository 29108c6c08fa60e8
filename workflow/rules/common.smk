# Config validation and the helpers that turn the config into file lists.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from igkd.config import validate_config
from igkd.methods import get_method
from igkd.provenance import fingerprint

config.update(validate_config(config))

DS = config["dataset"]["name"]
RESULTS = f"results/{DS}"
LOGS = f"logs/{DS}"
BENCH = f"{RESULTS}/benchmarks"
STUDENTS = config["students"]
THREADS = config["runtime"]["threads"]


wildcard_constraints:
    method="[A-Za-z_]+",
    drop=r"\d+",
    run=r"\d+",
    attribution="[a-z]+",


CIFAR = config["dataset"]["cifar10"]
CIFAR_ARCHIVE = f"{CIFAR['data_dir']}/cifar-10-python.tar.gz"


def raw_data_input(wildcards):
    if DS == "cifar10":
        return CIFAR["path"] if CIFAR["source"] == "path" else CIFAR_ARCHIVE
    if DS == "imagefolder":
        return config["dataset"]["imagefolder"]["root"]
    return []


def student_precompute(wildcards):
    method = get_method(wildcards.method)
    if method.kd or method.ig:
        attribution = STUDENTS["ig"]["attribution"]
        return f"{RESULTS}/precompute/{attribution}.h5"
    return []


def student_dirs():
    return expand(
        f"{RESULTS}/students/{{method}}/drop{{drop}}/run{{run}}",
        method=STUDENTS["methods"],
        drop=STUDENTS["drops"],
        run=range(STUDENTS["runs"]),
    )


def final_outputs():
    return [
        f"{RESULTS}/tables/runs.csv",
        f"{RESULTS}/tables/summary.csv",
        f"{RESULTS}/stats/summary.csv",
        f"{RESULTS}/figures/compression.pdf",
    ]
