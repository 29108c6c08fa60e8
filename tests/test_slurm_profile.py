"""profiles/slurm sends every rule that runs a model to a GPU node (fast: reads the files;
the real cluster runs in tests/test_slurm.py). A rule left out would run on the CPU
partition, where runtime.device auto finds no driver and trains on the CPU at ~1/100 of the
speed; time_models would time the models on a device the students are not deployed on."""

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PROFILE = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
RULE = re.compile(r"^\s*rule\s+(\w+)\s*:|^\s*use rule (\w+) as (\w+)", re.MULTILINE)


def rules_with_a_gpu_slot() -> set[str]:
    """Rules whose resources claim a GPU slot (`gpu=`), `use rule ... as` copies included."""
    blocks: dict[str, str] = {}
    copies: dict[str, str] = {}
    for path in sorted((REPO / "workflow/rules").glob("*.smk")):
        text = path.read_text()
        matches = list(RULE.finditer(text))
        for match, after in zip(matches, [*matches[1:], None]):
            body = text[match.end() : after.start() if after else len(text)]
            if match.group(1):
                blocks[match.group(1)] = body
            else:
                copies[match.group(3)] = match.group(2)
                blocks[match.group(3)] = body
    gpu = {name for name, body in blocks.items() if re.search(r"\bgpu=", body)}
    return gpu | {copy for copy, source in copies.items() if source in gpu}


def test_every_rule_that_runs_a_model_goes_to_the_gpu_partition_with_one_gpu():
    resources = PROFILE["set-resources"]
    gpu_rules = rules_with_a_gpu_slot()
    assert {"train_teacher", "distill_student", "time_models", "train_sweep_kd"} <= gpu_rules
    teacher = resources["train_teacher"]
    for rule in sorted(gpu_rules):
        assert rule in resources, f"profiles/slurm: {rule} claims a GPU slot but has no set-resources"
        got = resources[rule]
        assert (got.get("slurm_partition"), got.get("gres")) == (teacher["slurm_partition"], teacher["gres"]), rule
        assert got.get("gpu") == 0, f"{rule}: the rule's gpu slots would become --gpus=N (summed over a group)"


def test_every_rule_in_set_resources_is_a_rule_of_the_workflow():
    names = set(RULE.findall("\n".join(p.read_text() for p in (REPO / "workflow/rules").glob("*.smk"))))
    known = {name for match in names for name in match if name}
    assert set(PROFILE["set-resources"]) <= known, set(PROFILE["set-resources"]) - known
