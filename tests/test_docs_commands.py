"""The README and docs/*.md show only commands, paths, config keys and links that work
(tests/doc_commands.py says what is checked and how), and the README's demo-profile
commands dry-run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from doc_commands import (
    REPO,
    Repo,
    blocks_and_prose,
    commands,
    console_examples,
    doc_pages,
    problems,
    section_reference_problems,
    snakemake_targets,
)

DRY_RUN_TIMEOUT_S = 120  # one dry run of the demo's DAG: seconds on an idle machine


@pytest.fixture(scope="module")
def repo() -> Repo:
    return Repo()


def test_readme_and_docs_commands_paths_keys_and_links_all_resolve(repo):
    found = [p for page in doc_pages() for p in problems(page, repo)]
    assert not found, "\n".join(found)


def test_readme_section_references_in_the_code_name_readme_headings(repo):
    found = section_reference_problems(repo)
    assert not found, "\n".join(found)


def test_igkd_info_transcripts_show_what_igkd_info_prints(capsys, monkeypatch):
    """Every `$ igkd info ...` transcript in the README and docs is today's output, run in
    the repository folder as a reader would (so ./config.yaml is read)."""
    from igkd.cli import main

    monkeypatch.chdir(REPO)
    shown = [
        (command, output)
        for page in doc_pages()
        for command, output in console_examples(page)
        if Path(command.argv[0]).name == "igkd" and command.argv[1:2] == ("info",)
    ]
    assert shown, "no `$ igkd info` transcript in the README or docs"
    for command, output in shown:
        assert main(list(command.argv[1:])) == 0, command
        printed = tuple(line.rstrip() for line in capsys.readouterr().out.splitlines())
        assert printed == output, f"{command.where}: the transcript differs from what igkd info prints"


def _write(tmp_path: Path, text: str) -> Path:
    page = tmp_path / "page.md"
    page.write_text(text)
    return page


def test_a_broken_path_in_a_fenced_command_is_named(tmp_path, repo):
    page = _write(
        tmp_path,
        "# Try\n\n```bash\n.venv/bin/python benchmarks/no_such_benchmark.py --case digits\n"
        ".venv/bin/igkd plan --profile profiles/demo --cores 2\n```\n",
    )
    assert problems(page, repo) == ["page.md:4: path benchmarks/no_such_benchmark.py does not exist"]


def test_broken_targets_profiles_subcommands_and_make_targets_are_named(tmp_path, repo):
    page = _write(
        tmp_path,
        "```bash\n"
        ".venv/bin/snakemake --profile profiles/demoo fig_compression\n"  # line 2
        ".venv/bin/snakemake --cores 2 fig_no_such_figure\n"  # 3
        ".venv/bin/snakemake --cores 32 --resources gpu=4 ablation\n"  # 4: the target is eaten by --resources
        ".venv/bin/snakemake --cores 2 --configfile config.yaml ablation\n"  # 5: ... and by --configfile
        "CUDA_VISIBLE_DEVICES=1 .venv/bin/igkd no-such-command\n"  # 6
        "make demo && make no-such-target\n"  # 7
        "```\n\n```console\n$ .venv/bin/igkd info --no-such-flag\noutput line, not a command\n```\n",  # 11
    )
    found = problems(page, repo)
    expected = [
        ("page.md:2:", "path profiles/demoo does not exist"),
        ("page.md:2:", "--profile profiles/demoo: no profiles/demoo/config.yaml"),
        ("page.md:3:", "target 'fig_no_such_figure' is not a rule"),
        ("page.md:4:", "snakemake cannot parse '--cores 32 --resources gpu=4 ablation'"),
        ("page.md:5:", "--configfile took 'ablation'"),
        ("page.md:6:", "igkd cannot parse 'no-such-command'"),
        ("page.md:7:", "make: no target 'no-such-target'"),
        ("page.md:11:", "igkd cannot parse 'info --no-such-flag'"),
    ]
    for where, what in expected:
        assert any(p.startswith(where) and what in p for p in found), (where, what, found)
    assert len(found) == len(expected), found


def test_config_keys_in_yaml_blocks_and_inline_code_are_schema_keys(tmp_path, repo):
    page = _write(
        tmp_path,
        "```yaml\nstudents:\n  methods: [Student, KD]\n```\n\n"  # line 2; the key moved to experiments.<name>
        "```yaml\nexperiments:\n  ablation: {runs: 0}\n```\n\n"  # line 7: a key, but not a valid value
        "Set `teacher.widht` and `students.ig.p`, `experiments.<name>.runs`, `precompute.ig.*`;\n"
        "read `stats.md`, `timing.csv` and `igkd.analysis.stats`.\n",
    )
    found = problems(page, repo)
    assert found[0] == "page.md:2: config key students.methods is not in the schema"
    assert found[1].startswith("page.md:7: config block is not valid over config.yaml:") and "runs" in found[1]
    assert found[2:] == ["page.md:11: config key teacher.widht is not in the schema"]


def test_broken_links_and_sections_are_named(tmp_path, repo):
    (tmp_path / "other.md").write_text("# Other\n\n## A section\n")
    page = _write(
        tmp_path,
        "# Page\n\n[ok](other.md#a-section), [ok](#page), [gone](missing.md), "
        '[no section](other.md#no-section)\n\nAs README "No such section" says.\n',
    )
    assert problems(page, repo) == [
        "page.md:3: link missing.md does not reach a file",
        "page.md:3: link other.md#no-section: other.md has no section #no-section",
        'page.md:5: README has no section "No such section"',
    ]


def test_readme_demo_commands_dry_run():
    """The README's snakemake commands on the demo profile build their DAG: one dry run
    over the union of their targets (a few seconds)."""
    blocks, _ = blocks_and_prose((REPO / "README.md").read_text())
    targets, shown = set(), 0
    for block in blocks:
        for command in commands(block, "README.md") if block.lang in ("bash", "sh", "console") else []:
            argv = command.argv
            if Path(argv[0]).name == "snakemake" and "profiles/demo" in argv:
                shown += 1
                targets |= set(snakemake_targets(argv[1:]))
    assert shown, "the README shows no snakemake command on profiles/demo"
    dry = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--nolock", "--profile", "profiles/demo", *sorted(targets)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=DRY_RUN_TIMEOUT_S,
    )
    assert dry.returncode == 0, dry.stderr[-3000:]


def test_a_config_file_a_command_names_is_shipped_or_written_by_the_page(tmp_path, repo):
    """The README once named `two_per_gpu.yaml`, a file nobody shipped or showed how to write."""
    page = _write(
        tmp_path,
        "```yaml\n# cifar10_64px.yaml\ndataset: {image_size: 64}\n```\n\n```bash\n"
        "printf 'runtime: {threads: 2}\\n' > threads.yaml\n"  # line 7
        ".venv/bin/snakemake --cores 2 --configfile config.yaml cifar10_64px.yaml threads.yaml my_run.yaml\n"
        ".venv/bin/snakemake --cores 2 --configfile config.yaml profiles/workstation/two-per-gpu.yaml\n"
        ".venv/bin/snakemake --cores 2 --configfile config.yaml two_per_gpu.yaml\n"  # 10: neither
        "```\n",
    )
    found = problems(page, repo)
    assert (
        len(found) == 1
        and found[0].startswith("page.md:10:")
        and "two_per_gpu.yaml: not in the repository" in (found[0])
    ), found


@pytest.mark.parametrize("snippet", sorted(p for p in (REPO / "profiles").glob("*/*.yaml") if p.name != "config.yaml"))
def test_shipped_config_snippets_validate_over_config_yaml(snippet):
    from igkd.config import load_config

    load_config(REPO / "config.yaml", snippet)  # raises on an unknown key or a bad value


@pytest.mark.parametrize("profile", sorted((REPO / "profiles").glob("*/config.yaml")), ids=lambda p: p.parent.name)
def test_every_profile_reads_config_files_that_exist(profile):
    import yaml

    for name in yaml.safe_load(profile.read_text()).get("configfile") or []:
        assert (REPO / name).is_file(), f"{profile}: configfile {name} does not exist"
