"""Render the HTML report's text as `snakemake --report` does and list docutils' system messages.

The report's front page (the Snakefile's `report:` file) and each output's caption are
Jinja templates; Snakemake appends its link targets (one per panel, category and file),
renders the template and hands the result to docutils, which prints every problem it finds
into the page as a "System Message" box. This builds the run's DAG with Snakemake's API, finds
the outputs marked for the report as `auto_report` does, renders each caption with
Snakemake's own `FileRecord.render` and the front page the way `auto_report` does, with
Snakemake's link block, and collects what docutils reports at warning level and above.

Used by tests/test_report_text.py; by hand:
`python tests/report_text.py --configfile config.yaml profiles/demo/demo.yaml` prints one
line per message and exits 1 if there is any.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import io
import itertools
import json
import re
import sys
import textwrap
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import snakemake.report as smk_report
from docutils.core import publish_parts
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, Quietness, ResourceSettings

REPO = Path(__file__).resolve().parents[1]
WARNING_LEVEL = 2  # docutils: 1 info, 2 warning, 3 error, 4 severe; the report shows >= 2
NEVER_HALT = 5  # collect every message instead of stopping at the first
MESSAGE = re.compile(r"^(?P<where>.*?):(?P<line>\d+|):? \((?P<level>[A-Z]+)/\d\) (?P<text>.*)$")


@dataclass(frozen=True)
class Message:
    source: str  # the .rst file (caption or front page) and the output it describes
    line: str
    level: str
    text: str

    def __str__(self) -> str:
        return f"{self.source}, line {self.line}: {self.level}: {self.text}"


def docutils_messages(text: str, source: str) -> list[Message]:
    """Every system message at warning level or above that docutils reports for `text`,
    rendered to HTML as Snakemake renders it (`publish_parts`, html writer)."""
    stream = io.StringIO()
    settings = {"report_level": WARNING_LEVEL, "halt_level": NEVER_HALT, "warning_stream": stream}
    publish_parts(text, writer="html", settings_overrides=settings)
    found = []
    for line in stream.getvalue().splitlines():
        match = MESSAGE.match(line)
        if match:
            found.append(Message(source, match["line"], match["level"], match["text"]))
        elif found:  # a message's continuation lines (e.g. the offending source)
            found[-1] = Message(source, found[-1].line, found[-1].level, f"{found[-1].text} {line.strip()}")
        elif line.strip():  # docutils wrote something this parser does not know: still a message
            found.append(Message(source, "", "UNPARSED", line.strip()))
    return found


def snakemake_link_block() -> str:
    """The reST link targets `auto_report` appends to every caption and the front page: taken
    from the installed Snakemake's source, so the check follows its version."""
    source = inspect.getsource(smk_report.auto_report)
    found = re.search(r'rst_links = textwrap\.dedent\("""(.*?)"""\)', source, flags=re.S)
    if found is None:
        raise RuntimeError("snakemake.report.auto_report no longer builds rst_links; update tests/report_text.py")
    return textwrap.dedent(found[1])


def report_environment():
    """The Jinja environment auto_report renders captions and the front page with."""
    from jinja2 import Environment

    return Environment(trim_blocks=True, lstrip_blocks=True)


def report_items(dag) -> tuple[dict, list]:
    """(category -> subcategory -> records, files) as auto_report gathers them, for outputs
    that need not exist yet: a record is the job and caption of one output marked for the report."""
    results: dict = defaultdict(lambda: defaultdict(list))
    seen_files: set = set()
    files = []

    async def category(name, job):
        expanded = await smk_report.expand_report_argument(name, job.wildcards, job) if name is not None else None
        return smk_report.Category(name=expanded)

    for job in dag.jobs:
        for f in itertools.chain(job.output, job.input):
            if not smk_report.is_flagged(f, "report") or f in seen_files:
                continue
            seen_files.add(f)
            flag = smk_report.get_flag_value(f, "report")
            record = SimpleNamespace(
                job=job,
                path=Path(f),
                target=Path(f).name,
                raw_caption=flag.caption,
                raw_wildcards=job.wildcards,
                workflow=job.rule.workflow,
                caption=None,
            )
            cat = asyncio.run(category(flag.category, job))
            sub = asyncio.run(category(flag.subcategory, job))
            results[cat][sub].append(record)
    targets: set = set()
    for subcats in results.values():
        for records in subcats.values():
            for record in records:
                if record.target not in targets:  # auto_report keeps the first file of each name
                    targets.add(record.target)
                    files.append(record)
    return results, files


def check(dag, workflow) -> list[Message]:
    """Render the front page and every caption as Snakemake does; their docutils messages."""
    env = report_environment()
    links = snakemake_link_block()
    results, files = report_items(dag)
    messages: list[Message] = []
    rendered: dict = {}

    def checking_publish(text, writer_name="html", **_):
        rendered["text"] = text
        return {"body": "", "html_body": ""}

    original = smk_report.publish_parts
    smk_report.publish_parts = checking_publish  # FileRecord.render hands its text to docutils here
    try:
        done = set()
        for subcats in results.values():
            for records in subcats.values():
                for record in records:
                    if record.raw_caption is None:
                        continue
                    smk_report.FileRecord.render(record, env, links, results, files)
                    caption = Path(record.raw_caption.get_path_or_uri(secret_free=True)).name
                    key = (caption, rendered["text"])
                    if key not in done:  # one check per distinct rendered caption
                        done.add(key)
                        messages += docutils_messages(rendered["text"], f"{caption} ({record.path})")
    finally:
        smk_report.publish_parts = original
    if workflow.report_text:
        name = Path(workflow.report_text.get_path_or_uri(secret_free=True)).name
        messages += docutils_messages(front_page(workflow, results, files, env, links), f"{name} (front page)")
    return messages


def front_page(workflow, results, files, env, links: str = "") -> str:
    """The front page's reST as auto_report renders it (with `links` appended)."""
    with workflow.sourcecache.open(workflow.report_text) as fh:
        template = fh.read() + links

    class Snakemake:  # what auto_report gives the front page
        config = workflow.config

    return env.from_string(template).render(snakemake=Snakemake, categories=results, files=files)


def build_dag(api, workdir: Path, configfiles: list[str], targets: list[str]):
    """The run's DAG, built with Snakemake's API as `snakemake --report` builds it (no lock)."""
    workflow_api = api.workflow(
        resource_settings=ResourceSettings(cores=1),
        config_settings=ConfigSettings(configfiles=[workdir / f for f in configfiles]),
        snakefile=workdir / "Snakefile",
        workdir=workdir,
    )
    workflow_api.dag(DAGSettings(targets=frozenset(targets)))
    workflow = workflow_api._workflow
    workflow._prepare_dag(forceall=False, ignore_incomplete=True, lock_warn_only=True, nolock=True)
    workflow._build_dag()
    return workflow.dag, workflow


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--directory", type=Path, default=REPO, help="the workflow's folder (Snakefile, config.yaml)")
    parser.add_argument("--configfile", nargs="+", default=["config.yaml"])
    parser.add_argument("--target", nargs="*", default=[], help="targets (default: the default target)")
    parser.add_argument("--json", action="store_true", help="print the messages as a JSON list")
    parser.add_argument("--front-page", action="store_true", help="print the rendered front page instead")
    args = parser.parse_args(argv)
    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        dag, workflow = build_dag(api, args.directory.resolve(), args.configfile, args.target)
        if args.front_page:
            results, files = report_items(dag)
            print(front_page(workflow, results, files, report_environment()))
            return 0
        messages = check(dag, workflow)
    if args.json:
        print(json.dumps([m.__dict__ for m in messages]))
    else:
        for message in messages:
            print(message)
    return 1 if messages else 0


if __name__ == "__main__":
    sys.exit(main())
