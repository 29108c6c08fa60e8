"""dataset.tag names the run's folders (igkd.folders): results/<tag>/ and logs/<tag>/, the
dataset's name by default; a tag that is not a safe folder name is one line naming the key;
what runs (the dataset read, the comparison with the paper) stays keyed on dataset.name."""

import re
from pathlib import Path

import pytest
import yaml

from igkd.analysis.paper_numbers import comparability, load_numbers
from igkd.config import load_config, merge, validate_config
from igkd.folders import logs_dir, results_dir
from igkd.io import InputError
from igkd.plan import build
from igkd.plan.runspec import ResolvedRun, RunSpec
from test_workflow import snakemake

REPO = Path(__file__).resolve().parents[1]
DEMO = ["--configfile", "config.yaml", "profiles/demo/demo.yaml"]


def demo_config(**dataset) -> dict:
    config = load_config(REPO / "config.yaml", REPO / "profiles/demo/demo.yaml")
    return validate_config(merge(config, {"dataset": dataset}))


def test_the_folders_are_the_dataset_name_by_default_and_the_tag_when_set():
    config = demo_config()
    assert config["dataset"]["tag"] is None
    assert (results_dir(config), logs_dir(config)) == ("results/digits", "logs/digits")
    tagged = demo_config(tag="digits-16px_v1.2")
    assert (results_dir(tagged), logs_dir(tagged)) == ("results/digits-16px_v1.2", "logs/digits-16px_v1.2")


def test_the_plan_reads_the_tagged_results_folder():
    run = ResolvedRun(RunSpec(), Path("/work/run"), (), demo_config(tag="b"), 1, "cpu", None)
    assert build.results_dir(run) == Path("/work/run/results/b")


@pytest.mark.parametrize("bad", ["a/b", "..", ".", "two words", "", "caf\u00e9", "x\ny"])
def test_a_tag_that_is_not_a_safe_folder_name_is_one_line_naming_the_key(bad):
    with pytest.raises(InputError) as err:
        demo_config(tag=bad)
    assert str(err.value).splitlines() == [
        "invalid config:",
        f"  dataset.tag: {bad!r} is not a folder name: use letters, digits, '-', '_' and '.' (not '.' or '..')",
    ]


def test_the_paper_comparison_follows_the_dataset_name_not_the_tag():
    numbers = load_numbers()
    full = validate_config(yaml.safe_load((REPO / "config.yaml").read_text()))
    assert comparability(merge(full, {"dataset": {"tag": "cifar10-rerun"}}), numbers).comparable
    demo, tagged = demo_config(), demo_config(tag="cifar10")
    assert comparability(tagged, numbers) == comparability(demo, numbers)
    assert not comparability(tagged, numbers).comparable


def folders(out: str, root: str) -> set[str]:
    """The first folder under `root`/ of every path a dry run lists."""
    return set(re.findall(rf"(?<![\w/]){root}/([^/\s]+)/", out))


def test_a_dry_run_with_a_tag_writes_under_results_tag_and_without_one_under_the_name(workdir):
    standin = demo_config()["external_eval"]["root"]  # the demo's stand-in: a path of its own
    code, out = snakemake(workdir, "-n", *DEMO)
    assert code == 0, out[-3000:]
    assert folders(out, "results") == {"digits"} and folders(out, "logs") == {"digits"}

    (workdir / "tag.yaml").write_text(yaml.safe_dump({"dataset": {"tag": "digits-b"}}))
    code, out = snakemake(workdir, "-n", *DEMO, "tag.yaml")
    assert code == 0, out[-3000:]
    assert folders(out, "logs") == {"digits-b"}
    assert folders(out, "results") == {"digits-b", "digits"}
    elsewhere = set(re.findall(r"(?<![\w/])results/(?!digits-b/)[^\s,]+", out))
    assert elsewhere and all(path.startswith(standin) for path in elsewhere), elsewhere
    for path in ("results/digits-b/data.h5", "results/digits-b/paper/comparison.md", "logs/digits-b/train_teacher.log"):
        assert path in out


def test_a_dry_run_with_a_bad_tag_stops_with_one_line_naming_the_key(workdir):
    (workdir / "bad.yaml").write_text(yaml.safe_dump({"dataset": {"tag": "../elsewhere"}}))
    code, out = snakemake(workdir, "-n", *DEMO, "bad.yaml")
    assert code != 0
    assert [line.strip() for line in out.splitlines() if "dataset.tag" in line] == [
        "dataset.tag: '../elsewhere' is not a folder name: use letters, digits, '-', '_' and '.' (not '.' or '..')"
    ]
