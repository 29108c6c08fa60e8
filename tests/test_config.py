import copy

import pytest
import yaml

from igkd.architectures import build_student
from igkd.config import load_config, validate_config
from igkd.io import InputError
from igkd.models import build_teacher, multiply_adds, n_params


@pytest.fixture
def full(repo):
    return yaml.safe_load((repo / "config.yaml").read_text())


def test_full_config_is_the_paper_protocol(full):
    cfg = validate_config(full)
    s, e = cfg["students"], cfg["experiments"]
    assert cfg["dataset"]["name"] == "cifar10" and cfg["dataset"]["image_size"] == 32
    assert (
        len(e["ablation"]["methods"]) == 8
        and e["ablation"]["students"] == ["mobilenetv2-drop5"]
        and e["ablation"]["runs"] == 10
    )
    assert e["ablation"]["fraction"] == e["compression"]["fraction"] == 1.0
    assert e["montecarlo"]["methods"] == ["Student", "KD", "KD_IG", "KD_IG_AT"] and e["montecarlo"]["runs"] == 60
    assert e["montecarlo"]["fraction"] == 0.8 and e["compression"]["students"] == [
        f"mobilenetv2-drop{d}" for d in (3, 5, 7, 9, 11, 13, 15, 17)
    ]
    assert e["grid"]["enabled"] is False and e["ablation"]["enabled"] is True
    assert s["epochs"] == 100
    assert s["kd"] == {"alpha": 0.01, "temperature": 2.5} and s["ig"]["p"] == 0.1 and s["at"]["gamma"] == 0.8
    assert cfg["teacher"]["epochs"] == 100 and cfg["precompute"]["ig"]["steps"] == 50
    assert cfg["controls"]["experiment"] == "ablation" and cfg["controls"]["runs"] == 10


def test_schema_defaults_are_the_papers_experiments(full):
    """Without an experiments section the schema's defaults are config.yaml's."""
    listed = validate_config(full)["experiments"]
    del full["experiments"]
    assert validate_config(full)["experiments"] == listed


def test_demo_profile_merges(repo):
    cfg = load_config(repo / "config.yaml", repo / "profiles/demo/demo.yaml")
    assert cfg["dataset"]["name"] == "digits" and cfg["students"]["kd"]["alpha"] == 0.01
    assert (
        cfg["experiments"]["ablation"]["methods"]
        == validate_config(yaml.safe_load((repo / "config.yaml").read_text()))["experiments"]["ablation"]["methods"]
    )  # the demo shrinks runs and drops, keeps the methods


def test_demo_is_a_real_compression(repo):
    """Every demo student is smaller and cheaper than the demo's own teacher, and the demo keeps
    every experiment with all 8 methods in the ablation, 2+ factors and 2+ runs (the old
    demo's width-1.0 students outgrew their width-0.25 teacher)."""
    from igkd.experiments import Campaign

    cfg = load_config(repo / "config.yaml", repo / "profiles/demo/demo.yaml")
    size, classes = cfg["dataset"]["image_size"], 10
    teacher = build_teacher(classes, cfg["teacher"]["width"])
    teacher_params, teacher_macs = n_params(teacher), multiply_adds(teacher, size)
    campaign = Campaign.from_config(cfg)
    assert campaign.enabled == ["ablation", "montecarlo", "compression"]
    assert len(campaign.experiments["ablation"].methods) == 8 and campaign.experiments["ablation"].runs >= 2
    assert len(campaign.experiments["compression"].students) >= 2 and campaign.experiments["montecarlo"].runs >= 2
    for student_id in campaign.students():
        student = build_student(student_id, classes, cfg["students"]["width"])
        assert n_params(student) < teacher_params, student_id
        assert multiply_adds(student, size) < teacher_macs, student_id


def test_defaults_are_filled(full):
    del full["students"]["kd"]
    assert validate_config(full)["students"]["kd"] == {"alpha": 0.01, "temperature": 2.5}


def test_precision_teacher_exclude_val_and_mixed_conditions_are_settings(full):
    """Issue 24: runtime.precision (default fp32, the paper's), teacher.exclude_val (default
    false, the paper's teacher saw every training row; the schema used to refuse the key the
    teacher stage reads) and stats.allow_mixed_conditions (default false)."""
    from igkd.identity import teacher_params

    for section, key in (("runtime", "precision"), ("teacher", "exclude_val"), ("stats", "allow_mixed_conditions")):
        full[section].pop(key, None)
    cfg = validate_config(copy.deepcopy(full))
    assert cfg["runtime"]["precision"] == "fp32" and cfg["teacher"]["exclude_val"] is False
    assert cfg["stats"]["allow_mixed_conditions"] is False
    full["teacher"]["exclude_val"] = True
    full["runtime"]["precision"] = "auto"
    cfg = validate_config(full)
    assert cfg["teacher"]["exclude_val"] is True and teacher_params(cfg["teacher"])["exclude_val"] is True
    full["runtime"]["precision"] = "tf32"
    with pytest.raises(InputError, match=r"runtime.precision: 'tf32' is not one of \['fp32', 'bf16', 'fp16', 'auto'\]"):
        validate_config(full)


@pytest.mark.parametrize(
    "path, value, message",
    [
        (("students", "lr_typo"), 1, r"students: Additional properties are not allowed \('lr_typo'"),
        (
            ("experiments", "ablation", "methods"),
            ["KD", "FOO"],
            r"experiments.ablation.methods.1: unknown method 'FOO'; expected one of",
        ),
        (("students", "ig", "p"), 1.5, r"students.ig.p: 1.5 is greater than the maximum of 1"),
        (("students", "kd", "alpha"), -0.1, r"students.kd.alpha: -0.1 is less than the minimum of 0"),
        (("students", "kd", "temperature"), 0, r"students.kd.temperature: 0 is less than or equal to the minimum of 0"),
        (
            ("experiments", "compression", "students"),
            ["mobilenetv2-drop0", "mobilenetv2-drop5"],
            r"experiments.compression.students.0: mobilenetv2: drop must lie in 1..18, got 0",
        ),
        (
            ("experiments", "grid", "students"),
            ["mobilenetv2-drop19"],
            r"experiments.grid.students.0: mobilenetv2: drop must lie in 1..18, got 19",
        ),
        (("experiments", "grid", "students"), ["resnet-depth9"], r"resnet: depth must be 6n \+ 2, got 9"),
        (("experiments", "grid", "students"), ["resnet-drop8"], r"resnet is sized by depth, e.g. resnet-depthN"),
        (("experiments", "grid", "students"), ["vgg-depth8"], r"unknown architecture 'vgg'; expected one of"),
        (("experiments", "grid", "students"), [5], r"experiments.grid.students.0: 5 is not of type 'string'"),
        (("students", "losses"), {"nope": 0.5}, r"students.losses.nope: unknown loss 'nope'"),
        (("precompute", "attributions"), ["ig", "gradcams"], r"precompute.attributions.1: unknown attribution"),
        (("plugins",), ["no_such_plugin.py"], r"plugins: no_such_plugin.py: no such file \(looked in"),
        (("plugins",), ["no_such_module_xyz"], r"plugins: 'no_such_module_xyz': no such module on the Python path"),
        (("experiments", "montecarlo", "fraction"), 0, r"experiments.montecarlo.fraction: 0 is less than or equal"),
        (("experiments", "ablation", "fraction"), 1.2, r"experiments.ablation.fraction: 1.2 is greater than the max"),
        (("experiments", "ablation", "runs"), 0, r"experiments.ablation.runs: 0 is less than the minimum of 1"),
        (("experiments", "ablation", "typo"), 0, r"experiments.ablation: Additional properties are not allowed"),
        (("experiments", "pilot"), {}, r"experiments: Additional properties are not allowed \('pilot'"),
        (("controls", "experiment"), "pilot", r"controls.experiment: 'pilot' is not one of"),
        (("students", "runs"), 3, r"students.runs: moved to experiments.<name>.\{methods, students, runs, fraction\}"),
        (("dataset", "name"), "mnist", r"dataset.name: 'mnist' is not one of"),
        (("teacher", "epochs"), "ten", r"teacher.epochs: 'ten' is not of type 'integer'"),
    ],
)
def test_bad_values_name_the_key(full, path, value, message):
    cfg = copy.deepcopy(full)
    node = cfg
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(InputError, match=message):
        validate_config(cfg)


def test_cross_key_rules(full):
    full["teacher"]["source"] = "import"
    with pytest.raises(InputError, match="teacher.weights: required"):
        validate_config(full)
    full["teacher"]["source"] = "train"
    full["dataset"]["cifar10"]["source"] = "path"
    with pytest.raises(InputError, match="dataset.cifar10.path: required"):
        validate_config(full)
