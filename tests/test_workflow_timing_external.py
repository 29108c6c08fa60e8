"""The timing and external-evaluation rules in the DAG (dry runs of the demo configuration)."""

import pytest
import yaml

from test_workflow import job_counts, snakemake

DEMO = ["--configfile", "config.yaml", "profiles/demo/demo.yaml"]


def test_demo_times_models_and_evaluates_its_labelled_stand_in(workdir):
    code, out = snakemake(workdir, "-n", "--quiet", "rules", *DEMO)
    assert code == 0, out
    counts = job_counts(out)
    for rule in (
        "time_models",
        "fig_latency",
        "fig_compression",
        "export_standin",
        "evaluate_external",
        "fig_imagenet",
    ):
        assert counts.get(rule) == 1, rule


def test_no_external_rules_without_a_root_and_no_stand_in_for_a_real_folder(workdir, tmp_path):
    (workdir / "off.yaml").write_text(yaml.safe_dump({"external_eval": {"root": None, "standin_rotation": None}}))
    code, out = snakemake(workdir, "-n", "--quiet", "rules", *DEMO, "off.yaml")
    assert code == 0, out
    counts = job_counts(out)
    assert counts["time_models"] == 1
    assert not {"export_standin", "evaluate_external", "fig_imagenet"} & set(counts)

    folder = tmp_path / "imagenet32"
    (folder / "n02690373").mkdir(parents=True)
    real = {
        "external_eval": {
            "root": str(folder),
            "standin_rotation": None,
            "name": "imagenet_subset",
            "class_map": "imagenet_cifar10_map.csv",
        }
    }
    (workdir / "real.yaml").write_text(yaml.safe_dump(real))
    code, out = snakemake(workdir, "fig_imagenet", "-n", "--quiet", "rules", *DEMO, "real.yaml")
    assert code == 0, out
    counts = job_counts(out)
    assert counts["evaluate_external"] == 1 and counts["fig_imagenet"] == 1 and "export_standin" not in counts


@pytest.mark.parametrize("target", ["fig_imagenet", "external", "evaluate_external"])
def test_an_external_target_without_a_root_stops_with_one_line_naming_the_key(workdir, target):
    (workdir / "off.yaml").write_text(yaml.safe_dump({"external_eval": {"root": None, "standin_rotation": None}}))
    code, out = snakemake(workdir, target, "-n", *DEMO, "off.yaml")
    assert code != 0
    assert "No rule to produce" not in out
    named = [line.strip() for line in out.splitlines() if "external_eval.root" in line]
    assert len(named) == 1, out[-3000:]
    assert named[0].startswith("InputError: external_eval.root: not set;")
    assert "add 'external_eval: {root: /path/to/folder}' to a config file" in named[0]


def test_ig_convergence_figure_only_where_the_maps_are_refined(workdir):
    """The demo refines its IG maps to a tolerance and draws fig_ig_convergence; with
    tolerance: null (the paper's fixed steps, config.yaml's default) it is not a target."""
    code, out = snakemake(workdir, "-n", "--quiet", "rules", *DEMO)
    assert code == 0, out
    assert job_counts(out).get("fig_ig_convergence") == 1
    (workdir / "fixed.yaml").write_text(
        yaml.safe_dump({"precompute": {"ig": {"method": "gausslegendre", "tolerance": None}}})
    )
    code, out = snakemake(workdir, "-n", "--quiet", "rules", *DEMO, "fixed.yaml")
    assert code == 0, out
    assert "fig_ig_convergence" not in job_counts(out)


def test_power_target_reads_the_controls_only_where_they_are_on(workdir):
    """`snakemake power` builds stats/power.csv and fig_power; the controls' runs and
    comparisons are its inputs only while controls.methods is not empty."""
    code, out = snakemake(workdir, "power", "-n", "--quiet", "rules", *DEMO)
    assert code == 0, out
    jobs = job_counts(out)
    assert jobs.get("power_table") == 1 and jobs.get("fig_power") == 1 and jobs.get("compare_controls") == 1
    (workdir / "off.yaml").write_text(yaml.safe_dump({"controls": {"methods": []}}))
    code, out = snakemake(workdir, "power", "-n", "--quiet", "rules", *DEMO, "off.yaml")
    assert code == 0, out
    jobs = job_counts(out)
    assert jobs.get("power_table") == 1 and "compare_controls" not in jobs
