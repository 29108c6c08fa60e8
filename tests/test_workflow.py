"""The Snakemake DAG: full-protocol dry run, and reruns of exactly the stale stages."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

TINY = {
    "dataset": {"name": "digits", "image_size": 8},
    "teacher": {
        "width": 0.25,
        "epochs": 1,
        "batch_size": 64,
        "warmup_epochs": 0,
        "crop_padding": 1,
        "normalize": None,
        "flip": False,
    },
    "precompute": {"chunk": 256, "ig": {"steps": 4}},
    "students": {
        "methods": ["Student", "KD_IG_AT"],
        "drops": [13],
        "runs": 1,
        "epochs": 1,
        "crop_padding": 1,
        "eval_every": 1,
    },
    "runtime": {"device": "cpu", "threads": {"teacher": 1, "precompute": 1, "student": 1}},
    "controls": {"methods": []},  # the controls have their own tiny run (tests/test_controls.py)
    "timing": {"batch_sizes": [1, 8], "warmup": 1, "min_run_time": 0.01, "max_run_time": 0.05},
    "sweeps": {
        "drop": 13,
        "runs": 1,
        "epochs": 1,
        "grouping": "sweep",
        "kd": {"alphas": [0.01], "temperatures": [2.5]},
        "overlay": {"ps": [0.1]},
    },
    "figures": {
        "examples": 2,
        "attention": {"methods": ["Student", "KD_IG_AT"]},
        "attributions": {"methods": ["saliency", "ig"]},
    },
}


def snakemake(workdir, *args):
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--directory", str(workdir), *args]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir, timeout=900)
    return result.returncode, result.stdout + result.stderr


def job_counts(output: str) -> dict[str, int]:
    table = output.split("Job stats:")[-1]
    return {name: int(n) for name, n in re.findall(r"^(\w+)\s+(\d+)$", table, flags=re.M) if name != "total"}


@pytest.fixture
def workdir(repo, tmp_path):
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(repo / name, tmp_path / name)
    for folder in ("workflow", "envs"):
        shutil.copytree(repo / folder, tmp_path / folder)
    return tmp_path


def test_full_protocol_dry_run_lists_the_paper_dag(workdir):
    code, out = snakemake(workdir, "-n", "--quiet", "rules")
    assert code == 0, out
    counts = job_counts(out)
    assert counts["distill_student"] == 8 * 8 * 60 + 4 * 60  # + 4 controls x 60 runs at drop 5
    assert counts["precompute_attributions"] == 2  # ig, and random for the IG@random control
    for rule in (
        "download_cifar10",
        "prepare_data",
        "train_teacher",
        "collect_runs",
        "run_stats",
        "fig_compression",
        "precompute_reference_defect",
        "compare_controls",
        "fig_controls",
    ):
        assert counts[rule] == 1, rule


def test_bad_config_fails_before_anything_runs(workdir):
    (workdir / "bad.yaml").write_text("students:\n  methods: [KD, KDX]\n")
    code, out = snakemake(workdir, "-n", "--configfile", "config.yaml", "bad.yaml")
    assert code != 0
    assert "students.methods.1: 'KDX' is not one of" in out


@pytest.mark.slow
def test_tiny_run_then_only_stale_stages_rerun(workdir):
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    config = ["--configfile", "config.yaml", "tiny.yaml"]
    code, out = snakemake(workdir, *config)
    assert code == 0, out
    runs = (workdir / "results/digits/tables/runs.csv").read_text().splitlines()
    assert len(runs) == 1 + 2  # header + 2 methods x 1 drop x 1 run
    for suffix in ("pdf", "png"):
        assert (workdir / f"results/digits/figures/compression.{suffix}").stat().st_size > 1000
    code, out = snakemake(workdir, "-n", *config)
    assert code == 0 and "Nothing to be done" in out, out
    # a students-only setting reruns students and what follows, not data/teacher/precompute
    (workdir / "tiny2.yaml").write_text(yaml.safe_dump({"students": {"epochs": 2}}))
    code, out = snakemake(workdir, "-n", "--quiet", "rules", *config, "tiny2.yaml")
    assert code == 0, out
    # (the sweeps leave students.epochs out of their settings: they set their own)
    assert job_counts(out) == {
        "distill_student": 2,
        "collect_runs": 1,
        "run_stats": 1,
        "fig_compression": 1,
        "fig_latency": 1,
        "fig_mc_hist": 1,
        "fig_attention": 1,
        "power_table": 1,  # power reads the runs and their runtime.json
        "fig_power": 1,
        "all": 1,
    }
    # more Monte Carlo runs train only the new runs; finished ones stay
    (workdir / "tiny4.yaml").write_text(yaml.safe_dump({"students": {"runs": 2}}))
    code, out = snakemake(workdir, "-n", "--quiet", "rules", *config, "tiny4.yaml")
    assert code == 0, out
    assert job_counts(out)["distill_student"] == 2  # run1 of both methods, not run0 again
    # a teacher setting reruns the teacher and everything downstream of it
    (workdir / "tiny3.yaml").write_text(yaml.safe_dump({"teacher": {"epochs": 2}}))
    code, out = snakemake(workdir, "-n", "--quiet", "rules", *config, "tiny3.yaml")
    counts = job_counts(out)
    assert "prepare_data" not in counts and counts["train_teacher"] == 1
    assert counts["precompute_attributions"] == 1 and counts["distill_student"] == 2
    # editing package code a stage imports reruns that stage: the workflow hashes its own src/
    # (common.smk puts it first on sys.path), so a copy there stands for an edit of the package
    shutil.copytree(REPO / "src", workdir / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    code, out = snakemake(workdir, "-n", "--quiet", "rules", *config)
    assert code == 0 and "Nothing to be done" in out, out
    prepare = workdir / "src/igkd/data/prepare.py"
    prepare.write_text(prepare.read_text() + "\n# edited\n")
    code, out = snakemake(workdir, "-n", "--quiet", "rules", *config)
    assert code == 0 and job_counts(out)["prepare_data"] == 1, out
    plot = workdir / "src/igkd/plots/compression.py"
    prepare.write_text(prepare.read_text().replace("\n# edited\n", ""))
    plot.write_text(plot.read_text() + "\n# edited\n")
    code, out = snakemake(workdir, "-n", "--quiet", "rules", *config)
    assert code == 0 and set(job_counts(out)) == {"fig_compression", "all"}, out


def test_prepare_cifar10_from_local_copy(workdir):
    """The real CIFAR-10 path, on a tiny archive in the genuine python format."""
    import h5py
    import numpy as np

    from fixtures_data import fake_cifar10_contents, write_fake_cifar10

    tarball, _, _ = write_fake_cifar10(workdir / "raw", n_per_batch=20)
    override = {
        "dataset": {
            "name": "cifar10",
            "val_fraction": 0.2,
            "cifar10": {"source": "path", "path": str(tarball), "verify": False},
        }
    }
    (workdir / "local.yaml").write_text(yaml.safe_dump(override))
    code, out = snakemake(workdir, "results/cifar10/data.h5", "--configfile", "config.yaml", "local.yaml")
    assert code == 0, out
    contents = fake_cifar10_contents(n_per_batch=20)
    with h5py.File(workdir / "results/cifar10/data.h5") as h5:
        assert h5["train/images"].shape == (100, 32, 32, 3) and h5["test/images"].shape == (20, 32, 32, 3)
        first = contents["data_batch_1"][b"data"][0].reshape(3, 32, 32).transpose(1, 2, 0)
        assert np.array_equal(h5["train/images"][0], first)
        assert len(h5["val_index"]) == 20
        assert list(h5.attrs["classes"]) == [n.decode() for n in contents["batches.meta"][b"label_names"]]
