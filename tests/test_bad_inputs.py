"""The bad-input matrix items not covered elsewhere, each with its exact message.

Covered in other files (not repeated here): corrupt/truncated CIFAR archive, md5
mismatch and missing local path (test_data_cifar10.py); unreadable images, empty
classes, mixed sizes (test_data_imagefolder.py); unknown config keys, unknown method in
the config, p > 1, alpha < 0, T = 0, L = 0 or 19, fraction 0 or > 1
(test_config.py); precompute logits of wrong shape or dtype, missing rows, other
teacher/data (test_precompute.py).
"""

import copy
import pickle
import re
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
import yaml

from igkd.analysis.collect import RUN_COLUMNS, runs_table
from igkd.attribution.precompute import AttributionJob, load_precomputed, precompute
from igkd.config import load_schema, validate_config
from igkd.data.store import read_data_h5, write_data_h5
from igkd.io import InputError, load_torch, read_json, write_json
from igkd.models import build_teacher
from igkd.training.augment import InputNorm
from igkd.training.methods import METHODS, get_method
from igkd.training.teacher import TrainedTeacher, import_teacher


def exact(message: str) -> str:
    """A pytest.raises(match=...) pattern for exactly this message."""
    return "^" + re.escape(message) + "$"


# --- config: the out-of-range sides and keys test_config.py does not try -------------------------


@pytest.fixture(scope="module")
def full(repo):
    return yaml.safe_load((repo / "config.yaml").read_text())


def with_value(cfg: dict, path: tuple, value) -> dict:
    cfg = copy.deepcopy(cfg)
    node = cfg
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return cfg


@pytest.mark.parametrize(
    "path, value, message",
    [
        (("students", "ig", "p"), -0.1, "students.ig.p: -0.1 is less than the minimum of 0"),
        (("students", "kd", "alpha"), 1.5, "students.kd.alpha: 1.5 is greater than the maximum of 1"),
        (
            ("students", "kd", "temperature"),
            -1,
            "students.kd.temperature: -1 is less than or equal to the minimum of 0",
        ),
        (
            ("experiments", "ablation", "fraction"),
            -0.5,
            "experiments.ablation.fraction: -0.5 is less than or equal to the minimum of 0",
        ),
        (
            ("experiments", "ablation", "students"),
            [7.5],
            "experiments.ablation.students.0: 7.5 is not of type 'string'",
        ),
        (
            ("students", "kd", "alhpa"),
            0.1,
            "students.kd: Additional properties are not allowed ('alhpa' was unexpected); "
            "allowed keys: alpha, temperature",
        ),
    ],
)
def test_out_of_range_config_values_name_the_key(full, path, value, message):
    with pytest.raises(InputError, match=exact("invalid config:\n  " + message)):
        validate_config(with_value(full, path, value))


def test_unknown_top_level_key_lists_the_allowed_ones(full):
    allowed = ", ".join(sorted(load_schema()["properties"]))
    cfg = {**copy.deepcopy(full), "studnets": {}}
    with pytest.raises(
        InputError,
        match=exact(
            "invalid config:\n  <top level>: Additional properties are not allowed ('studnets' was unexpected); "
            f"allowed keys: {allowed}"
        ),
    ):
        validate_config(cfg)


@pytest.mark.parametrize(
    "path, value",
    [
        (("students", "ig", "p"), 0),
        (("students", "ig", "p"), 1),
        (("students", "kd", "alpha"), 0),
        (("students", "kd", "alpha"), 1),
        (("students", "kd", "temperature"), 1e-6),
        (("experiments", "montecarlo", "fraction"), 1),
        (("experiments", "compression", "students"), ["mobilenetv2-drop1", "mobilenetv2-drop18"]),
        (("experiments", "compression", "students"), ["resnet-depth8", "resnet-depth110"]),
    ],
)
def test_range_ends_are_accepted(full, path, value):
    node = validate_config(with_value(full, path, value))
    for key in path:
        node = node[key]
    assert node == value


def test_unknown_method_name_at_run_time():
    """A method reached without the config (e.g. a target path typed by hand)."""
    with pytest.raises(ValueError, match=r"^unknown method 'KDX'; expected one of " + re.escape(str(sorted(METHODS)))):
        get_method("KDX")


# --- model weights -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def teacher_state():
    return build_teacher(10, 0.25).state_dict()


def test_weights_with_wrong_keys_are_named(tmp_path, teacher_state):
    state = dict(teacher_state)
    del state["features.0.0.weight"]
    state["head.weight"] = torch.zeros(1)
    path = tmp_path / "renamed.pt"
    torch.save(state, path)
    with pytest.raises(
        InputError,
        match=exact(
            f"{path}: state-dict keys do not match the CIFAR MobileNetV2 teacher (width 0.25): "
            "missing ['features.0.0.weight'], unexpected ['head.weight']"
        ),
    ):
        import_teacher(path, 10, 0.25)


def test_weights_of_another_width_name_the_first_wrong_shape(tmp_path):
    path = tmp_path / "wider.pt"
    torch.save({"state_dict": build_teacher(10, 0.5).state_dict()}, path)  # nested, as many trainers save
    with pytest.raises(
        InputError, match=exact(f"{path}: 'features.0.0.weight' has shape (16, 3, 3, 3), expected (8, 3, 3, 3)")
    ):
        import_teacher(path, 10, 0.25)


def test_weights_for_another_class_count(tmp_path):
    path = tmp_path / "hundred.pt"
    torch.save(build_teacher(100, 0.25).state_dict(), path)
    with pytest.raises(
        InputError, match=exact(f"{path}: 'classifier.1.weight' has shape (100, 1280), expected (10, 1280)")
    ):
        import_teacher(path, 10, 0.25)


def test_weights_file_that_is_a_tensor_or_not_torch(tmp_path):
    tensor = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(InputError, match=exact(f"{tensor}: expected a state dict, got Tensor")):
        import_teacher(tensor, 10, 0.25)
    text = tmp_path / "notes.pt"
    text.write_text("not a model")
    with pytest.raises(
        InputError,
        match=exact(
            f"{text}: not a plain tensor/state-dict file that loads with weights_only=True "
            "(UnpicklingError: Unsupported operand 110)"
        ),
    ):
        import_teacher(text, 10, 0.25)
    with pytest.raises(InputError, match=exact(f"{tmp_path / 'absent.pt'}: file not found")):
        import_teacher(tmp_path / "absent.pt", 10, 0.25)


class WritesMarker:
    """Unpickling this calls exec(): a stand-in for any code hidden in a model file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('code ran')",)


def test_state_dict_file_that_runs_code_is_refused(tmp_path, teacher_state):
    marker = tmp_path / "marker.txt"
    path = tmp_path / "trojan.pt"
    torch.save({**teacher_state, "features.0.0.weight": WritesMarker(marker)}, path)
    message = exact(
        f"{path}: refused: unpickling it would call exec, which is not a tensor type; "
        "expected a plain tensor/state-dict file (loaded with weights_only=True, which never runs code from a file)"
    )
    with pytest.raises(InputError, match=message):
        import_teacher(path, 10, 0.25)
    with pytest.raises(InputError, match=message):
        load_torch(path)  # the loader every stage uses for model and checkpoint files
    assert not marker.exists()
    # the payload is live: an unrestricted load would have run it
    torch.load(path, weights_only=False)
    assert marker.read_text() == "code ran"


def test_plain_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "marker.txt"
    path = tmp_path / "trojan.pkl"
    path.write_bytes(pickle.dumps(WritesMarker(marker), protocol=2))
    with pytest.raises(
        InputError,
        match=exact(
            f"{path}: refused: unpickling it would call exec, which is not a tensor type; "
            "expected a plain tensor/state-dict file (loaded with weights_only=True, which never runs code from a file)"
        ),
    ):
        load_torch(path)
    assert not marker.exists()


# --- precompute file: what test_precompute.py does not try --------------------------------------

OK = dict(n_rows=4, image_shape=(8, 8), num_classes=10)


def write_h5(path, logits=None, maps=None, rows_done=4):
    with h5py.File(path, "w") as h5:
        if logits is not None:
            h5["logits"] = logits
        if maps is not None:
            h5["maps"] = maps
        h5.attrs["rows_done"] = rows_done
    return path


def test_precompute_missing_maps(tmp_path):
    path = write_h5(tmp_path / "ig.h5", logits=np.zeros((4, 10), np.float32))
    with pytest.raises(InputError, match=exact(f"{path}: dataset 'maps' missing")):
        load_precomputed(path, **OK)


def test_precompute_maps_of_other_image_size(tmp_path):
    path = write_h5(tmp_path / "ig.h5", np.zeros((4, 10), np.float32), np.zeros((4, 16, 16), np.float32))
    with pytest.raises(InputError, match=exact(f"{path}: 'maps' has shape (4, 16, 16), expected (4, 8, 8)")):
        load_precomputed(path, **OK)


def test_precompute_maps_of_wrong_dtype(tmp_path):
    path = write_h5(tmp_path / "ig.h5", np.zeros((4, 10), np.float32), np.zeros((4, 8, 8), np.float16))
    with pytest.raises(InputError, match=exact(f"{path}: 'maps' has dtype float16, expected float32")):
        load_precomputed(path, **OK)


def test_precompute_non_finite_values(tmp_path):
    maps = np.zeros((4, 8, 8), np.float32)
    maps[2, 3, 3] = np.nan
    path = write_h5(tmp_path / "ig.h5", np.zeros((4, 10), np.float32), maps)
    with pytest.raises(InputError, match=exact(f"{path}: contains non-finite logits or maps")):
        load_precomputed(path, **OK)


def test_precompute_file_that_is_not_hdf5(tmp_path):
    path = tmp_path / "ig.h5"
    path.write_bytes(b"\x89HDF but truncated")
    with pytest.raises(InputError, match="^" + re.escape(f"{path}: not a readable HDF5 file (")):
        load_precomputed(path, **OK)


def test_precompute_unknown_attribution(tmp_path):
    with pytest.raises(
        InputError,
        match=exact(
            "attribution 'lime' unknown; expected one of "
            "['gradcam', 'gradientshap', 'ig', 'random', 'saliency', 'smoothgrad']"
        ),
    ):
        teacher = TrainedTeacher(build_teacher(10, 0.25), InputNorm((0.5,) * 3, (0.5,) * 3), "t", 0)
        precompute(
            teacher, np.zeros((2, 8, 8, 3), np.uint8), np.zeros(2, np.int64), tmp_path / "x.h5", AttributionJob("lime")
        )


# --- dataset file and metrics files --------------------------------------------------------------


def test_dataset_file_that_is_not_hdf5(tmp_path):
    path = tmp_path / "data.h5"
    path.write_text("half-copied")
    with pytest.raises(InputError, match="^" + re.escape(f"{path}: not a valid igkd dataset file (")):
        read_data_h5(path)


def test_metrics_file_that_is_not_json(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text('{"test_acc": ')  # e.g. copied while being written by a tool without atomic writes
    with pytest.raises(
        InputError, match=exact(f"{path}: not valid JSON (Expecting value: line 1 column 14 (char 13))")
    ):
        read_json(path)


def test_metrics_file_missing_columns(tmp_path):
    path = tmp_path / "metrics.json"
    write_json(path, {"method": "KD", "student": "mobilenetv2-drop7", "test_acc": 80.0})
    missing = [c for c in RUN_COLUMNS if c not in ("method", "student", "test_acc")]
    with pytest.raises(InputError, match=exact(f"{path}: missing keys {missing}")):
        runs_table([path], teacher_acc=90.0)


# --- the same errors inside the pipeline: one clean line in the job log --------------------------


@pytest.mark.e2e
def test_pipeline_reports_bad_weights_in_one_line(repo, tmp_path, tiny_splits):
    """teacher.source: import with a state dict of the wrong width fails the train_teacher
    job with the message alone in its log (no traceback) and on the console."""
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(repo / name, tmp_path / name)
    for folder in ("workflow", "envs"):
        shutil.copytree(repo / folder, tmp_path / folder)
    # the dataset file ready-made (with --rerun-triggers mtime below): only the teacher job runs
    write_data_h5(tmp_path / "results/digits/data.h5", tiny_splits, {"dataset": "digits", "image_size": 8})
    weights = tmp_path / "wide teacher.pt"  # a space: paths never pass through a shell
    torch.save(build_teacher(10, 0.5).state_dict(), weights)
    (tmp_path / "bad.yaml").write_text(
        yaml.safe_dump(
            {
                "dataset": {"name": "digits", "image_size": 8},
                "teacher": {"source": "import", "weights": str(weights), "width": 0.25},
                "runtime": {"device": "cpu", "threads": {"teacher": 1}},
            }
        )
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--cores",
            "1",
            "--directory",
            str(tmp_path),
            "results/digits/teacher/metrics.json",
            "--rerun-triggers",
            "mtime",
            "--configfile",
            "config.yaml",
            "bad.yaml",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode != 0
    line = f"error: {weights}: 'features.0.0.weight' has shape (16, 3, 3, 3), expected (8, 3, 3, 3)"
    log = (tmp_path / "logs/digits/train_teacher.log").read_text()
    assert log == "device: cpu (runtime.device: cpu)\n" + line + "\n"  # the job's device line, then the error
    assert line in result.stdout + result.stderr
    assert not (tmp_path / "results/digits/teacher/metrics.json").exists()
    assert (
        "Nothing to be done" not in result.stdout + result.stderr
        and "prepare_data" not in result.stdout + result.stderr
    )
