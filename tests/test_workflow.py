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
    "experiments": {  # one tiny experiment; compression asks for the same two students
        "ablation": {
            "methods": ["Student", "KD_IG_AT"],
            "students": ["mobilenetv2-drop13"],
            "runs": 1,
            "fraction": 0.8,
        },
        "montecarlo": {"enabled": False},
        "compression": {
            "methods": ["Student", "KD_IG_AT"],
            "students": ["mobilenetv2-drop13"],
            "runs": 1,
            "fraction": 0.8,
        },
    },
    "students": {"epochs": 1, "crop_padding": 1, "eval_every": 1},
    "runtime": {"device": "cpu", "threads": {"teacher": 1, "precompute": 1, "student": 1}},
    "controls": {"methods": []},  # the controls have their own tiny run (tests/test_controls.py)
    "timing": {"batch_sizes": [1, 8], "warmup": 1, "min_run_time": 0.01, "max_run_time": 0.05},
    "sweeps": {
        "student": "mobilenetv2-drop13",
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


def student_folders(output: str) -> set[tuple[str, int, float, int]]:
    """(method, drop, fraction, run) of every mobilenetv2 distill_student job a dry run lists."""
    found = re.findall(r"students/([\w@]+)/mobilenetv2-drop(\d+)/f([\d.]+)/run(\d+)/metrics\.json", output)
    return {(m, int(d), float(f), int(r)) for m, d, f, r in found}


PAPER_METHODS = ["Student", "KD", "IG", "AT", "KD_IG", "KD_AT", "IG_AT", "KD_IG_AT"]
CONTROLS = [
    "shuffled_KD_in_class",
    "shuffled_KD",
    "shuffled_IG_in_class",
    "shuffled_IG",
    "reference_defect",
    "IG@random",
]


def test_full_protocol_dry_run_lists_the_paper_experiments(workdir):
    """config.yaml trains the paper's experiments and nothing else: the ablation (8 methods x
    10 full-set runs at drop 5), the Monte Carlo runs (4 methods x 60 at 0.8), the
    compression sweep (4 methods x 8 drops x 1 full-set run, drop 5 run 0 shared with the
    ablation), the controls paired with the ablation's runs, and the two sweeps' grids."""
    code, out = snakemake(workdir, "-n")
    assert code == 0, out
    ablation = {(m, 5, 1.0, r) for m in PAPER_METHODS for r in range(10)}
    montecarlo = {(m, 5, 0.8, r) for m in ["Student", "KD", "KD_IG", "KD_IG_AT"] for r in range(60)}
    compression = {(m, d, 1.0, 0) for m in ["Student", "KD", "KD_IG", "IG"] for d in range(3, 18, 2)}
    controls = {(m, 5, 1.0, r) for m in CONTROLS for r in range(10)}
    assert student_folders(out) == ablation | montecarlo | compression | controls
    assert len(ablation & compression) == 4 and len(ablation | montecarlo | compression | controls) == 408
    counts = job_counts(out)
    assert counts["distill_student"] == 408
    assert counts["train_sweep_point"] == 9 * 5 * 3 + 7 * 3  # the KD grid and the overlay-p sweep, 3 runs each
    assert counts["distill_student"] + counts["train_sweep_point"] <= 800  # was 4,236 in one grid
    assert counts["collect_runs"] == counts["run_stats"] == 3  # one per experiment
    assert counts["precompute_attributions"] == 2  # ig, and random for the IG@random control
    for rule in (
        "download_cifar10",
        "prepare_data",
        "train_teacher",
        "fig_compression",
        "fig_latency",
        "fig_mc_hist",
        "fig_kd_grid",
        "fig_overlay_p",
        "fig_attention",
        "fig_attributions",
        "fig_ig_overlay",
        "fig_ig_power",
        "time_models",
        "power_table",
        "fig_power",
        "precompute_reference_defect",
        "compare_controls",
        "fig_controls",
    ):
        assert counts[rule] == 1, rule


@pytest.mark.e2e
def test_each_experiment_is_a_target_and_the_grid_is_off_by_default(workdir):
    code, out = snakemake(workdir, "ablation", "-n", "--quiet", "rules")
    assert code == 0, out
    assert job_counts(out)["distill_student"] == 80 and "train_sweep_point" not in job_counts(out)
    code, out = snakemake(workdir, "kd_grid", "-n", "--quiet", "rules")
    assert code == 0 and job_counts(out)["train_sweep_point"] == 135 and "distill_student" not in job_counts(out)
    code, out = snakemake(workdir, "grid", "-n")  # off in `all`, runs when asked for
    assert code == 0, out
    assert len(student_folders(out)) == 8 * 8 * 60


def test_bad_config_fails_before_anything_runs(workdir):
    (workdir / "bad.yaml").write_text("experiments:\n  ablation:\n    methods: [KD, KDX]\n")
    code, out = snakemake(workdir, "-n", "--configfile", "config.yaml", "bad.yaml")
    assert code != 0
    assert "experiments.ablation.methods.1: unknown method 'KDX'; expected one of" in out
    (workdir / "old.yaml").write_text("students:\n  runs: 3\n  drops: [5]\n")  # a config from before the experiments
    code, out = snakemake(workdir, "-n", "--configfile", "config.yaml", "old.yaml")
    assert code != 0 and "students.drops, students.runs: moved to experiments.<name>" in out
    (workdir / "drops.yaml").write_text("experiments:\n  ablation:\n    drops: [5, 7]\n")  # before student ids
    code, out = snakemake(workdir, "-n", "--configfile", "config.yaml", "drops.yaml")
    assert code != 0
    assert (
        "experiments.ablation.drops: renamed to experiments.ablation.students, "
        "ids: [mobilenetv2-drop5, mobilenetv2-drop7]" in out
    )
    assert "Traceback" not in out


@pytest.mark.e2e
def test_tiny_run_then_only_stale_stages_rerun(workdir):
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    config = ["--configfile", "config.yaml", "tiny.yaml"]
    code, out = snakemake(workdir, *config)
    assert code == 0, out
    runs = (workdir / "results/digits/tables/ablation/runs.csv").read_text().splitlines()
    assert len(runs) == 1 + 2  # header + 2 methods x 1 drop x 1 run
    # the compression experiment asked for the same two students: trained once, in both tables
    assert (workdir / "results/digits/tables/compression/runs.csv").read_text().splitlines() == runs
    assert len(list((workdir / "results/digits/students").glob("*/mobilenetv2-drop13/f0.8/run0/metrics.json"))) == 2
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
        "distill_student": 2,  # shared by both experiments: trained once
        "collect_runs": 2,  # the ablation's and the compression's tables
        "run_stats": 2,
        "fig_compression": 1,
        "fig_latency": 1,
        "fig_attention": 1,
        "all": 1,
    }  # no Monte Carlo experiment here, and with one run per group no power table
    # exact caching: keys that change nothing written (flush size, report tolerance, points
    # per pass, threads, how sweep points are cut into jobs) rerun nothing
    quiet = {
        "precompute": {"chunk": 100, "ig": {"report_tolerance": 0.1, "internal_batch_size": 16}},
        "runtime": {"threads": {"student": 2}, "deterministic": "all", "gpu_lock_dir": "locks"},
        "sweeps": {"grouping": "point"},
    }
    (workdir / "quiet.yaml").write_text(yaml.safe_dump(quiet))
    code, out = snakemake(workdir, "-n", *config, "quiet.yaml")
    assert code == 0 and "Nothing to be done" in out, out
    # adding an attribution no method reads yet computes its file and nothing else
    (workdir / "saliency.yaml").write_text(yaml.safe_dump({"precompute": {"attributions": ["ig", "saliency"]}}))
    code, out = snakemake(workdir, "-n", "--quiet", "rules", *config, "saliency.yaml")
    assert code == 0 and job_counts(out) == {"precompute_attributions": 1, "all": 1}, out
    assert "results/digits/precompute/saliency.h5" in snakemake(workdir, "-n", *config, "saliency.yaml")[1]
    # a KD setting retrains the students of KD methods only (KD_IG_AT, not Student)
    (workdir / "kd.yaml").write_text(yaml.safe_dump({"students": {"kd": {"alpha": 0.05}}}))
    code, out = snakemake(workdir, "-n", "--quiet", "rules", *config, "kd.yaml")
    assert code == 0 and job_counts(out)["distill_student"] == 1, out
    # more Monte Carlo runs train only the new runs; finished ones stay
    (workdir / "tiny4.yaml").write_text(yaml.safe_dump({"experiments": {"ablation": {"runs": 2}}}))
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
