"""Plugins: students, attributions, loss terms and methods registered by name from a file
the config names (igkd.register, igkd.plugins; docs/extending.md)."""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from igkd import plugins, registry
from igkd.architectures import at_tap, build_student
from igkd.config import validate_config
from igkd.experiments import Campaign
from igkd.io import InputError
from igkd.models import n_params
from igkd.training.methods import get_method

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_workflow import TINY, job_counts, snakemake  # noqa: E402

EXAMPLES = ("tiny_student.py", "edges_attribution.py", "logit_norm_loss.py")


def one_plugin(repo) -> str:
    """The three worked examples of docs/extending.md as one module: a toy student, a toy
    attribution and a toy loss (with its method) side by side, as a researcher's file."""
    parts = [(repo / "examples" / "plugins" / name).read_text() for name in EXAMPLES]
    return "\n\n".join(parts)


@pytest.fixture
def config(repo):
    return yaml.safe_load((repo / "config.yaml").read_text())


@pytest.fixture
def plugin_file(repo, tmp_path):
    path = tmp_path / "my_ideas.py"
    path.write_text(one_plugin(repo))
    return path


def with_plugin(config: dict, plugin_file) -> dict:
    config = copy.deepcopy(config)
    config["plugins"] = [plugin_file.name]
    config["experiments"]["ablation"]["methods"] = ["Student", "KD_LN", "IG@edges", "AT"]
    config["experiments"]["ablation"]["students"] = ["tinycnn-channels8", "resnet-depth8"]
    return config


def test_a_plugin_registers_what_the_config_names(config, plugin_file):
    cfg = validate_config(with_plugin(config, plugin_file), config_dirs=(plugin_file.parent,))
    assert cfg["plugins"] == [str(plugin_file.resolve())]  # resolved beside the config, for the jobs
    assert get_method("KD_LN").losses == ("logit_norm",) and get_method("KD_LN").kd
    assert get_method("IG@edges").attribution == "edges"
    model = build_student("tinycnn-channels8", 10, 1.0)
    assert n_params(model) == (3 * 9 * 8 + 2 * 8) + (8 * 9 * 16 + 2 * 16) + (16 * 10 + 10)
    assert at_tap("tinycnn-channels8") == ("stem", 2)
    runs = Campaign.from_config(cfg).runs("ablation")
    assert len(runs) == 4 * 2 * 10
    tiny_kd_ln = next(r for r in runs if r.method == "KD_LN" and r.student == "tinycnn-channels8")
    assert set(tiny_kd_ln.params()["plugins"]) == {"student tinycnn", "method KD_LN", "loss logit_norm"}
    assert tiny_kd_ln.params()["recipe"]["losses"] == {"logit_norm": 0.01}  # the registered default
    resnet_student = next(r for r in runs if r.method == "Student" and r.student == "resnet-depth8")
    assert "plugins" not in resnet_student.params()  # igkd's own code only


def test_the_plugins_fingerprints_follow_each_entry_not_the_file(config, plugin_file, tmp_path):
    cfg = validate_config(with_plugin(config, plugin_file), config_dirs=(plugin_file.parent,))
    before = {r.key: r.params() for r in Campaign.from_config(cfg).runs("ablation")}
    edited = tmp_path / "edited" / "my_ideas.py"
    edited.parent.mkdir()
    source = plugin_file.read_text().replace("max(1, round(size * width))", "max(2, round(size * width))")
    edited.write_text(source)
    for table in (registry.ARCHITECTURES, registry.ATTRIBUTIONS, registry.LOSSES):
        for name in [n for n, entry in table.items() if entry.origin != registry.SHIPPED]:
            del table[name]
    from igkd.training.methods import METHODS

    del METHODS["KD_LN"]
    cfg = validate_config(with_plugin(config, edited), config_dirs=(edited.parent,))
    after = {r.key: r.params() for r in Campaign.from_config(cfg).runs("ablation")}
    changed = {key for key in before if before[key] != after[key]}
    assert changed == {key for key in before if key[1] == "tinycnn-channels8"}  # its 40 runs, none else


def test_a_plugin_loss_enters_the_loss_dict_with_its_weight(config, plugin_file):
    from igkd.training.distiller import Distiller, Recipe

    validate_config(with_plugin(config, plugin_file), config_dirs=(plugin_file.parent,))
    students = {**config["students"], "losses": {"logit_norm": 0.5}}
    recipe = Recipe.from_config(students)
    torch.manual_seed(0)
    model = build_student("tinycnn-channels8", 10, 1.0)
    distiller = Distiller(model, get_method("KD_LN"), recipe, None)
    x01, labels, teacher = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 3]), torch.randn(4, 10)
    logits, losses = distiller(x01, labels, teacher)
    assert list(losses) == ["ce", "kd", "logit_norm"]
    assert torch.allclose(losses["logit_norm"], 0.5 * logits.pow(2).mean())


@pytest.mark.parametrize(
    "source, message",
    [
        ("import torch\nx = 1 +\n", r"^plugins: .*broken\.py: SyntaxError: "),
        ("raise RuntimeError('no GPU here')\n", r"^plugins: .*broken\.py: line 1: RuntimeError: no GPU here$"),
        (
            "from igkd import register\n\n@register.student('resnet', size='depth')\ndef b(s, k, w):\n    pass\n",
            r"^plugins: .*broken\.py: line 3: ValueError: student 'resnet' is already registered \(by igkd\)$",
        ),
        (
            "from igkd import register\nregister.method('KD_X', kd=True, losses=('nope',))\n",
            r"^plugins: .*broken\.py: line 2: ValueError: unknown loss 'nope'",
        ),
    ],
)
def test_a_broken_plugin_is_one_line_naming_its_file(config, tmp_path, source, message):
    (tmp_path / "broken.py").write_text(source)
    config["plugins"] = ["broken.py"]
    with pytest.raises(InputError, match=message):
        validate_config(config, config_dirs=(tmp_path,))


def test_attention_transfer_needs_a_tap(config, tmp_path):
    (tmp_path / "no_tap.py").write_text(
        "from torch import nn\nfrom igkd import register\n\n"
        "@register.student('flat', size='units')\ndef b(size, k, w):\n    return nn.Linear(size, k)\n"
    )
    config["plugins"] = ["no_tap.py"]
    config["experiments"]["ablation"]["students"] = ["flat-units8"]
    with pytest.raises(InputError, match=r"experiments.ablation.students: student architecture 'flat' registered no"):
        validate_config(config, config_dirs=(tmp_path,))
    config["experiments"]["ablation"]["methods"] = ["Student", "KD"]
    assert validate_config(config, config_dirs=(tmp_path,))["experiments"]["ablation"]["students"] == ["flat-units8"]


def test_a_job_process_loads_the_plugins_it_needs(config, plugin_file):
    """A job (a fresh process the workflow starts) finds plugin names without loading
    anything itself: validate_config left the plugins in its environment."""
    import subprocess

    validate_config(with_plugin(config, plugin_file), config_dirs=(plugin_file.parent,))
    code = "from igkd.training.methods import get_method; print(get_method('KD_LN').losses)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "('logit_norm',)"


def tiny_plugin_config() -> dict:
    """The tiny workflow with the toy plugin's student, loss method and attribution, and
    igkd's ResNet-8 and Grad-CAM, through the documented config keys only."""
    config = copy.deepcopy(TINY)
    config["plugins"] = ["my_ideas.py"]
    config["experiments"] = {
        "ablation": {
            "methods": ["Student", "KD_LN", "IG@edges", "KD_IG@gradcam", "AT"],
            "students": ["tinycnn-channels8", "resnet-depth8"],
            "runs": 1,
            "fraction": 0.8,
        },
        "montecarlo": {"enabled": False},
        "compression": {"enabled": False},
    }
    config["students"] = {**config["students"], "losses": {"logit_norm": 0.05}}
    config["precompute"] = {**config["precompute"], "plugin_settings": {"edges": {"cell": 4}}}
    config["figures"] = {
        **config["figures"],
        "attributions": {"methods": ["edges", "gradcam", "ig"]},
        "attention": {"methods": ["Student", "AT"]},
    }
    config["runtime"] = {**config["runtime"], "warm_workers": True}
    return config


TARGETS = ["ablation", "results/digits/figures/attributions.pdf", "results/digits/figures/attention.pdf"]


@pytest.mark.e2e
def test_a_tiny_workflow_runs_a_plugin_resnet_and_gradcam_then_reruns_only_the_edited_student(repo, workdir):
    (workdir / "my_ideas.py").write_text(one_plugin(repo))
    (workdir / "tiny.yaml").write_text(yaml.safe_dump(tiny_plugin_config()))
    config = ["--configfile", "config.yaml", "tiny.yaml"]
    code, out = snakemake(workdir, *TARGETS, *config)
    assert code == 0, out
    runs = pd.read_csv(workdir / "results/digits/tables/ablation/runs.csv")
    assert len(runs) == 5 * 2 and set(runs["student"]) == {"tinycnn-channels8", "resnet-depth8"}
    params = runs.groupby("student")["params"].first()
    assert params["resnet-depth8"] == 78042  # mdistiller's ResNet-8 at 10 classes
    plugins.load([str(workdir / "my_ideas.py")])  # this process has not loaded it
    width = TINY["students"].get("width", 1.0)
    assert params["tinycnn-channels8"] == n_params(build_student("tinycnn-channels8", 10, width))
    results = workdir / "results/digits"
    history = pd.read_csv(results / "students/KD_LN/tinycnn-channels8/f0.8/run0/history.csv")
    assert "loss_logit_norm" in history and history["loss_logit_norm"].gt(0).all()  # the plugin's term trained
    for name in ("edges", "gradcam"):
        assert (results / f"precompute/{name}.h5").stat().st_size > 0
    metrics = json.loads((results / "students/KD_IG@gradcam/resnet-depth8/f0.8/run0/metrics.json").read_text())
    assert metrics["student"] == "resnet-depth8" and metrics["model"]["student"] == "resnet-depth8"
    for figure in ("attributions", "attention"):
        assert (results / f"figures/{figure}.png").stat().st_size > 1000
    code, out = snakemake(workdir, *TARGETS, "-n", *config)
    assert code == 0 and "Nothing to be done" in out, out
    # edit the plugin's student: exactly its 5 runs retrain (and the tables after them)
    source = (workdir / "my_ideas.py").read_text()
    edits = {
        "student": ("max(1, round(size * width))", "max(2, round(size * width))"),
        "loss": ("inputs.logits.pow(2).mean()", "inputs.logits.abs().mean()"),
        "attribution": ("F.avg_pool2d((gradient * x).abs()", "F.max_pool2d((gradient * x).abs()"),
    }
    retrained = {
        "student": {(m, "tinycnn-channels8") for m in ("Student", "KD_LN", "IG@edges", "KD_IG@gradcam", "AT")},
        "loss": {("KD_LN", s) for s in ("tinycnn-channels8", "resnet-depth8")},
        "attribution": {("IG@edges", s) for s in ("tinycnn-channels8", "resnet-depth8")},  # through edges.h5
    }
    for part, (old, new) in edits.items():
        assert old in source, part
        (workdir / "my_ideas.py").write_text(source.replace(old, new))
        code, out = snakemake(workdir, *TARGETS, "-n", *config)
        assert code == 0, out
        outputs = "\n".join(line for line in out.splitlines() if line.strip().startswith("output:"))
        listed = set(re.findall(r"students/([^/\s]+)/([\w-]+)/f0\.8/run0/metrics\.json", outputs))
        counts = job_counts(out)
        assert counts.get("distill_student") == len(retrained[part]), (part, out)
        assert listed == retrained[part], part
        assert "train_teacher" not in counts, part
        assert ("precompute_attributions" in counts) == (part == "attribution"), part
        assert ("fig_attributions" in counts) == (part == "attribution"), part
