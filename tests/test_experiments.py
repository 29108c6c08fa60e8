"""igkd.experiments: a student is identified by what determines it. Its folder, params,
checkpoint tag and runs.csv row come from one frozen StudentRun; experiments that ask for
the same student share it; a recipe key a method does not read is not part of it."""

import dataclasses

import numpy as np
import pytest
import yaml

from igkd.config import load_config, validate_config
from igkd.experiments import Campaign, StudentRecipe, StudentRun, fraction_text
from igkd.identity import precompute_params, prepare_params, teacher_params
from igkd.io import InputError
from igkd.training.student import index_sha, load_subsample, save_subsample


@pytest.fixture
def config(repo):
    return load_config(repo / "config.yaml")


def test_a_run_is_what_determines_it(config):
    recipe = StudentRecipe.from_config(config["students"])
    run = StudentRun("KD_IG", "mobilenetv2-drop5", 1, 3, recipe)  # an int fraction is the same run as 1.0
    assert run.folder("results/cifar10") == "results/cifar10/students/KD_IG/mobilenetv2-drop5/f1.0/run3"
    assert run.seed == config["students"]["seed_offset"] + 3
    assert StudentRun.from_params(run.params()) == run.from_params(run.params())
    again = StudentRun.from_params(run.params())
    assert again.params() == run.params() and again.folder("r") == run.folder("r")
    assert run.record() == {
        "method": "KD_IG",
        "control": False,
        "student": "mobilenetv2-drop5",
        "fraction": 1.0,
        "run": 3,
        "seed": 3,
        "epochs": 100,
    }
    assert fraction_text(0.8) == "0.8" and fraction_text(1) == "1.0"
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.student = "mobilenetv2-drop7"
    assert "plugins" not in run.params()  # igkd's own code: the rule's code fingerprint covers it


@pytest.mark.parametrize(
    "method, reads",
    [
        ("Student", set()),
        ("KD", {"kd"}),
        ("IG", {"ig"}),
        ("AT", {"at"}),
        ("KD_IG_AT", {"kd", "ig", "at"}),
        ("shuffled_KD", {"kd", "control_seed"}),
        ("shuffled_IG", {"ig", "control_seed"}),
        ("reference_defect", {"kd", "ig"}),
        ("IG@random", {"ig"}),
    ],
)
def test_params_hold_the_recipe_keys_the_method_reads(config, method, reads):
    recipe = StudentRecipe.from_config(config["students"])
    base = {"seed_offset", "exclude_val", "width", "epochs", "batch_size", "lr", "weight_decay"}
    base |= {"crop_padding", "flip", "normalize", "eval_every"}
    params = StudentRun(method, "mobilenetv2-drop5", 0.8, 0, recipe).params()
    assert set(params["recipe"]) == base | reads
    # a key the method does not read leaves its params (and so its job and checkpoint) alone
    other = dataclasses.replace(recipe, gamma=0.1, control_seed=1, kd=dataclasses.replace(recipe.kd, alpha=0.5))
    same = StudentRun(method, "mobilenetv2-drop5", 0.8, 0, other).params() == params
    assert same == (not reads & {"at", "control_seed", "kd"})


def test_experiments_share_the_students_they_both_ask_for(config):
    campaign = Campaign.from_config(config)
    assert campaign.enabled == ["ablation", "montecarlo", "compression"]  # grid off by default
    counts = {name: len(campaign.runs(name)) for name in campaign.enabled}
    assert counts == {"ablation": 80, "montecarlo": 240, "compression": 32}
    assert len(campaign.control_runs()) == 6 * 10 + 4 * 10  # controls and their paired compare_with runs
    everything = campaign.all_runs()
    assert len(everything) == len({r.key for r in everything}) == 80 + 240 + 28 + 60
    shared = campaign.run("KD", "mobilenetv2-drop5", 1.0, 0)
    assert campaign.owners(shared) == ["ablation", "compression", "controls"]
    assert campaign.owners(campaign.run("KD", "mobilenetv2-drop5", 0.8, 0)) == ["montecarlo"]
    assert campaign.controls.student == "mobilenetv2-drop5" and campaign.controls.fraction == 1.0  # the ablation's
    assert campaign.students() == [f"mobilenetv2-drop{d}" for d in (3, 5, 7, 9, 11, 13, 15, 17)]  # by size
    assert len(campaign.runs("grid")) == 3840  # a target by name, not in all_runs
    assert not {r.key for r in campaign.runs("grid")} <= {r.key for r in everything}


def test_old_students_keys_name_where_they_went(repo):
    cfg = yaml.safe_load((repo / "config.yaml").read_text())
    cfg["students"]["runs"] = 60
    with pytest.raises(InputError, match=r"students.runs: moved to experiments.<name>"):
        validate_config(cfg)


def test_subsample_is_a_bit_mask_with_its_checksum(tmp_path):
    rows = np.sort(np.random.default_rng(0).choice(50_000, 40_000, replace=False))
    path = tmp_path / "subsample.npz"
    save_subsample(path, rows, 50_000)
    assert path.stat().st_size < 50_000 / 8 + 1024  # the mask plus zip headers; int64 indices took 320,000 bytes
    np.testing.assert_array_equal(load_subsample(path), rows)
    with np.load(path) as saved:
        mask, n = saved["mask"].copy(), saved["n_rows"]
    mask[0] ^= 0b1000_0000  # one row more or less than was trained on
    np.savez(path, mask=mask, n_rows=n, sha=np.str_(index_sha(rows)))
    with pytest.raises(InputError, match=r"subsample.npz: the saved rows do not match their checksum"):
        load_subsample(path)


def test_stage_params_carry_what_changes_their_outputs(config):
    ig = precompute_params(config["precompute"], "ig")
    assert ig == {"attribution": "ig", "steps": 50, "method": "gausslegendre", "tolerance": None, "rel_floor": 1.0}
    ig = precompute_params({**config["precompute"], "ig": {**config["precompute"]["ig"], "tolerance": 0.05}}, "ig")
    assert {"tolerance", "max_steps", "rel_floor"} <= set(ig) and "report_tolerance" not in ig
    random = precompute_params(config["precompute"], "random")
    assert random == {"attribution": "random", "seed": 0, "batch_size": 64}  # draws follow the seed and batches
    assert "chunk" not in random and "seed" not in precompute_params(config["precompute"], "random", draws=False)
    assert prepare_params(config["dataset"]) == {
        "name": "cifar10",
        "image_size": 32,
        "val_fraction": 0.1,
        "split_seed": 0,
    }
    assert "weights" not in teacher_params(config["teacher"]) and teacher_params(config["teacher"])["epochs"] == 100
    imported = teacher_params({**config["teacher"], "source": "import", "weights": "t.pt"})
    assert imported == {"source": "import", "width": 1.0, "normalize": config["teacher"]["normalize"]}
