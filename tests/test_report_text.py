"""The HTML report's text: the front page and every caption, rendered as `snakemake --report`
renders them (tests/report_text.py), give docutils nothing to warn about (no "System Message"
box on any page), and the front page says what ran and where the verdicts and the power
table are."""

import json
import subprocess
import sys

import pytest
import yaml

import report_text
from igkd.config import load_config
from igkd.experiments import Campaign
from test_workflow import TINY

DEMO = ["config.yaml", "profiles/demo/demo.yaml"]
CONFIGS = {"demo": DEMO, "full": ["config.yaml"]}  # the demo and the full protocol


def helper(workdir, configfiles, *args):
    command = [sys.executable, str(report_text.__file__), "--directory", str(workdir), "--configfile", *configfiles]
    done = subprocess.run([*command, *args], capture_output=True, text=True, cwd=workdir, timeout=300)
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize("name", CONFIGS)
def test_front_page_and_every_caption_render_without_a_system_message(workdir, name):
    # the check sees what Snakemake appends (its own panels' links) and what docutils warns about
    links = report_text.snakemake_link_block()
    assert ".. _Statistics: javascript:show_panel('statistics')" in links
    twice = report_text.docutils_messages("Text.\n\n.. _Power: javascript:a()\n.. _power: javascript:b()\n", "x.rst")
    assert [(m.line, m.level, m.text) for m in twice] == [("4", "WARNING", 'Duplicate explicit target name: "power".')]

    code, out, err = helper(workdir, CONFIGS[name], "--json")
    messages = json.loads(out) if out.strip() else err[-3000:]
    assert messages == [], "\n".join(str(report_text.Message(**m)) for m in messages)
    assert code == 0


def front_page_lines(workdir, configfiles) -> tuple[str, str]:
    """The front page's two opening lines (what ran; where the verdicts are)."""
    code, out, err = helper(workdir, configfiles, "--front-page")
    assert code == 0, err[-3000:]
    lines = [line for line in out.splitlines() if line.startswith("- **")]
    return lines[0], lines[1]


def test_front_page_says_what_ran_and_where_the_verdicts_and_power_table_are(workdir):
    (workdir / "tag.yaml").write_text(yaml.safe_dump({"dataset": {"tag": "demo-b"}}))
    first, second = front_page_lines(workdir, [*DEMO, "tag.yaml"])
    students = len(Campaign.from_config(load_config(*(workdir / f for f in DEMO))).all_runs())
    assert first.startswith(f"- **What ran**: {students} students (ablation, montecarlo, compression and the controls)")
    assert "on digits at 16 x 16 pixels" in first and "``results/demo-b/``" in first
    assert "``results/demo-b/paper/comparison.md`` says why" in second  # digits: not comparable
    assert "``results/demo-b/stats/power.csv``" in second


def test_front_page_of_a_run_without_controls_or_power_leaves_them_out_and_renders_cleanly(workdir):
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(TINY))  # one run per method, no controls
    first, second = front_page_lines(workdir, ["config.yaml", "tiny.yaml"])
    students = len(Campaign.from_config(load_config(workdir / "config.yaml", workdir / "tiny.yaml")).all_runs())
    assert first.startswith(f"- **What ran**: {students} students (ablation, compression) on digits at 8 x 8 pixels")
    assert "power.csv" not in second and second.endswith("says why).")
    code, out, err = helper(workdir, ["config.yaml", "tiny.yaml"], "--json")
    assert (code, json.loads(out)) == (0, []), err[-3000:]
