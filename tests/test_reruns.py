"""What reruns when (igkd.reruns): every schema key declares it, the docs page is generated
from the declarations, and (pytest -m keywalk, run by .ci/run: ~8 minutes) changing each key
on a finished tiny workflow makes `snakemake -n` list exactly the declared rules."""

import re

import pytest
import yaml

import keywalk
from igkd.config import validate_config
from igkd.reruns import TARGET_RULES, declarations, expand, lookup, page


def workflow_rules(repo) -> set[str]:
    """Every rule the workflow defines (Snakefile and workflow/rules/*.smk, `use rule` too)."""
    text = "\n".join(p.read_text() for p in [repo / "Snakefile", *sorted((repo / "workflow/rules").glob("*.smk"))])
    return set(re.findall(r"^\s*(?:local)?rule (\w+):", text, flags=re.M)) | set(
        re.findall(r"^\s*use rule \w+ as (\w+)", text, flags=re.M)
    )


def test_every_leaf_key_declares_what_it_reruns(repo):
    found, groups = declarations()
    assert len(found) > 120
    assert [d.key for d in found if d.reruns is None] == []  # add x-reruns to the key in the schema
    rules = workflow_rules(repo)
    config = validate_config(yaml.safe_load((repo / "config.yaml").read_text()))
    for decl in found:
        assert decl.rules(groups) <= rules - TARGET_RULES, (decl.key, decl.rules(groups) - rules)
        for key in decl.when:
            lookup(config, key)  # a condition names a real key
        assert decl.reruns or decl.why or decl.when, f"{decl.key}: reruns nothing; say why (x-why)"
    assert rules >= TARGET_RULES


def test_groups_expand_in_order_and_minus_takes_out():
    groups = {"a": ["x", "y"], "b": ["@a", "z", "-y"]}
    assert expand(["@b"], groups) == {"x", "z"}
    assert expand(["@a", "-@a", "w"], groups) == {"w"}
    assert expand(["-x", "@a"], groups) == {"x", "y"}  # in order: removing before adding removes nothing
    with pytest.raises(KeyError, match="unknown rule group '@c'"):
        expand(["@c"], groups)


def test_what_reruns_when_page_is_generated_from_the_schema(repo):
    """docs/what-reruns-when.md is the page the declarations give: regenerate it with
    `python -m igkd.reruns --write docs/what-reruns-when.md` after editing the schema."""
    assert (repo / "docs/what-reruns-when.md").read_text() == page()


def test_every_key_has_a_walk_change(repo):
    """The walk knows how to change each key (else it fails there, minutes in)."""
    found, _ = declarations()
    root = yaml.safe_load((repo / "workflow/schemas/config.schema.yaml").read_text())
    config = keywalk.merged_config()
    for decl in found:
        change = keywalk.walk_change(decl, config, root)
        if change is None:
            assert not decl.applies(config), (
                f"{decl.key} cannot change on the walk's config, yet its declaration applies"
            )
            continue
        changed = keywalk.nested(change)
        validate_config(keywalk.merge(keywalk.base_config(), keywalk.merge(keywalk.WALK, changed)))


@pytest.mark.keywalk
def test_changing_each_key_reruns_exactly_what_it_declares(tmp_path):
    folder = keywalk.prepare(tmp_path / "walk")
    keywalk.finish(folder)
    results = keywalk.walk(folder)
    wrong = {key: pair for key, pair in results.items() if pair[0] != pair[1]}
    report = [
        f"{key}: snakemake -n lists {listed}; declared {sorted(declared)}" for key, (listed, declared) in wrong.items()
    ]
    assert not wrong, "\n".join(report)
