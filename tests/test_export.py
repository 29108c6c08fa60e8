"""Use a trained student (docs/use-a-student.md): igkd.load_student and `igkd export`.

One real student run (run_student on the 8x8 digits, two epochs, with an input
normalisation so that the exports must carry it) is loaded, exported in every format and
reloaded by the docs' own recipes in a Python process where igkd cannot be imported.

Tolerances: the exports hold the same float32 weights and operations as the loaded student;
only the order of float32 sums may differ (another process's kernels, ONNX Runtime's BatchNorm
folded into the convolutions), so logits are compared with torch.testing.assert_close's float32
defaults (rtol 1.3e-6, atol 1e-5), PyTorch's own tolerance for float32 rounding differences.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import igkd
from configs import STUDENT, student_run
from igkd.cli import EXPORT_FORMATS, main
from igkd.io import InputError, read_json, write_json

DOCS = Path(__file__).resolve().parents[1] / "docs" / "use-a-student.md"
NORMALIZE = {"mean": [0.2, 0.3, 0.4], "std": [0.3, 0.35, 0.4]}
DROP = 15
STUDENT_ID = f"mobilenetv2-drop{DROP}"
RUN_PARTS = ("students", "Student", STUDENT_ID, "f0.5", "run0")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(run folder, splits, metrics) of one trained student, written by the student stage,
    with the campaign's data.h5 where the workflow puts it (results/<dataset>/data.h5)."""
    from igkd.data.digits import load_digits_splits
    from igkd.data.store import with_val_split, write_data_h5
    from igkd.runtime import Runtime
    from igkd.training.augment import InputNorm
    from igkd.training.student import run_student
    from igkd.training.teacher import TrainedTeacher

    splits = with_val_split(load_digits_splits(8, 0.2, 0), 0.1, 0)
    results = tmp_path_factory.mktemp("export") / "results" / "digits"
    write_data_h5(results / "data.h5", splits, {})
    run = student_run("Student", STUDENT_ID, fraction=0.5, students={**STUDENT, "epochs": 2, "normalize": NORMALIZE})
    folder = results.joinpath(*RUN_PARTS)
    teacher = TrainedTeacher(None, InputNorm(), "t" * 64, 1000)  # the Student method reads no teacher
    metrics = run_student(splits, run, teacher, None, Runtime(log=lambda m: None), str(folder))
    return folder, splits, metrics


def pipeline_logits(folder: Path, splits, normalize) -> torch.Tensor:
    """Test-set logits as the workflow's evaluation computes them (igkd.training.loop.accuracy:
    build_student + the weights, channels-last as in training, InputNorm.prepare on uint8)."""
    from igkd.architectures import build_student, use_channels_last
    from igkd.models import load_weights
    from igkd.training.augment import InputNorm
    from igkd.training.loop import to_chw_tensor

    model = load_weights(build_student(STUDENT_ID, 10, STUDENT["width"]), folder / "model.pt", "student")
    model = use_channels_last(model, True).eval()
    with torch.no_grad():
        return model(InputNorm.from_config(normalize).prepare(to_chw_tensor(splits.test_images, "cpu")))


def test_load_student_gives_the_pipelines_logits(trained):
    folder, splits, metrics = trained
    student = igkd.load_student(folder)
    assert not student.model.training and not student.net.training
    assert (student.spec.student, student.spec.width, student.image_size) == (STUDENT_ID, STUDENT["width"], 8)
    assert metrics["model"]["student"] == STUDENT_ID and "drop" not in metrics["model"]
    assert student.classes == splits.classes and student.num_classes == 10
    assert [list(student.spec.mean), list(student.spec.std)] == [NORMALIZE["mean"], NORMALIZE["std"]]

    logits = student(splits.test_images)  # numpy uint8 (N, H, W, 3)
    assert logits.shape == (len(splits.test_labels), 10) and logits.dtype == torch.float32
    torch.testing.assert_close(logits, pipeline_logits(folder, splits, NORMALIZE))
    accuracy = 100.0 * float((logits.argmax(1).numpy() == splits.test_labels).mean())
    assert accuracy == pytest.approx(metrics["test_acc"], abs=1e-9)  # what the stage reported

    as_float = torch.from_numpy(splits.test_images).permute(0, 3, 1, 2).float() / 255
    assert torch.equal(student(as_float), logits)
    assert torch.equal(student(torch.from_numpy(splits.test_images)), logits)
    # one (H, W, 3) image: a batch of one may take other kernels (float32 rounding only)
    torch.testing.assert_close(student(splits.test_images[3]), logits[3:4])
    assert student.predict(splits.test_images[:5]) == [splits.classes[k] for k in logits[:5].argmax(1)]
    # a read-only array (np.asarray of a PIL image is one) is taken without torch's warning
    read_only = splits.test_images.copy()
    read_only.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(student(read_only), logits)


def test_an_older_run_without_its_model_entry_still_loads(trained, tmp_path):
    """Width and classes from the weights, names and size from data.h5, no normalisation
    (with a warning); outside a results tree the names are the class numbers."""
    folder, splits, _ = trained
    old = folder.with_name("run7")
    shutil.copytree(folder, old)
    metrics = read_json(old / "metrics.json")
    del metrics["model"]
    write_json(old / "metrics.json", metrics)
    with pytest.warns(UserWarning, match="records no `model`.*width 0.25 from the weights"):
        student = igkd.load_student(old)
    assert (student.spec.width, student.classes, student.image_size) == (0.25, splits.classes, 8)
    assert student.spec.mean is None
    torch.testing.assert_close(student(splits.test_images), pipeline_logits(old, splits, None))

    alone = tmp_path / "run7"
    shutil.copytree(old, alone)
    with pytest.warns(UserWarning, match="nowhere"):
        student = igkd.load_student(alone)
    assert student.image_size is None and student.classes == tuple(str(k) for k in range(10))


def test_a_run_written_before_student_ids_loads_by_its_drop(trained, tmp_path):
    """metrics.json and its `model` entry named the paper's MobileNetV2 by `drop` N: read
    as mobilenetv2-dropN, with the `model` entry and without it (width from the weights)."""
    folder, splits, _ = trained
    old = tmp_path / "students" / "Student" / f"drop{DROP}" / "f0.5" / "run0"
    shutil.copytree(folder, old)
    metrics = read_json(old / "metrics.json")
    model = {k: v for k, v in metrics["model"].items() if k != "student"}
    old_metrics = {**{k: v for k, v in metrics.items() if k not in ("student", "model")}, "drop": DROP}
    write_json(old / "metrics.json", {**old_metrics, "model": {**model, "drop": DROP}})
    student = igkd.load_student(old)
    assert student.spec.student == STUDENT_ID and student.spec.mean is not None
    expected = pipeline_logits(folder, splits, NORMALIZE)
    torch.testing.assert_close(student(splits.test_images), expected)
    write_json(old / "metrics.json", old_metrics)
    with pytest.warns(UserWarning, match="records no `model`"):
        student = igkd.load_student(old)
    assert (student.spec.student, student.spec.width) == (STUDENT_ID, STUDENT["width"])


def resnet_run(folder: Path, record: bool) -> torch.nn.Module:
    """A run folder of a (untrained) resnet-depth8 student, as the student stage writes one;
    without its `model` entry when `record` is False."""
    from igkd.architectures import build_student
    from igkd.io import save_torch
    from igkd.training.loaded import StudentSpec

    torch.manual_seed(0)
    model = build_student("resnet-depth8", 10, 0.5).eval()
    save_torch(folder / "model.pt", model.state_dict())
    spec = StudentSpec.of("resnet-depth8", 0.5, [str(k) for k in range(10)], 8, NORMALIZE)
    metrics = {"method": "Student", "student": "resnet-depth8", "test_acc": 10.0}
    write_json(folder / "metrics.json", {**metrics, "model": spec.record()} if record else metrics)
    return model


@pytest.mark.filterwarnings("ignore:.*torch.jit.load.*deprecated:FutureWarning")
def test_a_student_of_another_family_loads_and_exports_from_its_record(tmp_path, capsys):
    folder = tmp_path / "students" / "Student" / "resnet-depth8" / "f1.0" / "run0"
    model = resnet_run(folder, record=True)
    student = igkd.load_student(folder)
    assert student.spec.student == "resnet-depth8" and student.spec.paper_drop is None
    assert read_json(folder / "metrics.json")["model"]["architecture"].startswith("resnet: ")
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    mean, std = torch.tensor(NORMALIZE["mean"]).view(1, 3, 1, 1), torch.tensor(NORMALIZE["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = model((x - mean) / std)
    torch.testing.assert_close(student(x), expected)
    export(folder, "state_dict", tmp_path / "out" / "resnet.pt", capsys)
    saved = torch.load(tmp_path / "out" / "resnet.pt", weights_only=True)
    assert saved["description"]["student"] == "resnet-depth8"
    assert saved["description"]["architecture"] == {
        "builder": "igkd.architectures.resnet_cifar:build_resnet",
        "student": "resnet-depth8",
        "depth": 8,
        "num_classes": 10,
        "width": 0.5,
    }
    export(folder, "torchscript", tmp_path / "ts" / "resnet.ts", capsys)
    torch.testing.assert_close(torch.jit.load(tmp_path / "ts" / "resnet.ts")(x), expected)


def test_only_a_mobilenetv2_run_loads_without_its_model_entry(tmp_path):
    folder = tmp_path / "students" / "Student" / "resnet-depth8" / "f1.0" / "run0"
    resnet_run(folder, record=False)
    with pytest.raises(InputError, match="records no `model` entry, and only a MobileNetV2"):
        igkd.load_student(folder)
    write_json(folder / "metrics.json", {"student": "vit-patch4", "model": {}})
    with pytest.raises(InputError, match="`model` entry is not a student description"):
        igkd.load_student(folder)


@pytest.mark.parametrize(
    ("images", "expected"),
    [
        (np.zeros((2, 8, 8, 4), np.uint8), r"uint8 images of shape \(2, 8, 8, 4\): expected RGB \(H, W, 3\)"),
        (np.zeros((8, 8), np.uint8), r"uint8 images of shape \(8, 8\)"),
        (torch.zeros(2, 8, 8, 3), r"float images of shape \(2, 8, 8, 3\): expected RGB \(N, 3, H, W\)"),
        (torch.full((1, 3, 8, 8), 255.0), r"range over \[255, 255\]: expected \[0, 1\] \(pass 0-255 pixels as uint8"),
        (np.zeros((1, 3, 8, 8), np.int64), r"dtype torch.int64: expected uint8"),
        (np.zeros((2, 16, 16, 3), np.uint8), r"16x16 pixels: the student was trained on 8x8"),
        (np.zeros((0, 8, 8, 3), np.uint8), r"no images"),
        ([[0, 1]], r"numpy array or torch tensor, got list"),
    ],
)
def test_wrong_images_are_one_line_input_errors(trained, images, expected):
    folder, _, _ = trained
    student = igkd.load_student(folder)
    with pytest.raises(InputError, match=expected) as err:
        student(images)
    assert str(err.value).startswith(f"{folder}: ") and "\n" not in str(err.value)


def test_a_folder_that_is_not_a_student_run_is_refused(tmp_path, capsys):
    with pytest.raises(InputError, match=r"not a student run folder \(expected model.pt and metrics.json"):
        igkd.load_student(tmp_path)
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    (teacher / "model.pt").write_bytes(b"")
    write_json(teacher / "metrics.json", {"test_acc": 90.0})
    with pytest.raises(InputError, match="no `student`: not a student run's metrics"):
        igkd.load_student(teacher)
    assert main(["export", str(tmp_path), "--format", "torchscript", str(tmp_path / "x.ts")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path}: not a student run folder") and len(err.splitlines()) == 1
    assert not (tmp_path / "x.ts").exists()


def docs_recipe(needle: str) -> str:
    """The python block of docs/use-a-student.md that contains `needle`."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)
    found = [b for b in blocks if needle in b]
    assert len(found) == 1, f"{DOCS}: {len(found)} python blocks contain {needle!r}"
    return found[0]


def run_without_igkd(recipe: str, folder: Path, x: torch.Tensor, numpy_input: bool = False) -> torch.Tensor:
    """Run a docs recipe in a fresh Python where `import igkd` fails; `x` is its input and
    its `logits` come back."""
    np.save(folder / "x.npy", x.numpy())
    load = "x = np.load('x.npy')\n" if numpy_input else "import torch\nx = torch.from_numpy(np.load('x.npy'))\n"
    script = (
        "import sys\nsys.modules['igkd'] = None  # igkd cannot be imported here\nimport numpy as np\n"
        + load
        + recipe
        + "\nnp.save('logits.npy', logits if isinstance(logits, np.ndarray) else logits.detach().numpy())\n"
        + "assert sys.modules['igkd'] is None\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", script], cwd=folder, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return torch.from_numpy(np.load(folder / "logits.npy"))


def export(folder: Path, fmt: str, out: Path, capsys) -> None:
    assert main(["export", str(folder), "--format", fmt, str(out)]) == 0
    assert capsys.readouterr().out.startswith(f"wrote {out} ({fmt})")
    assert sorted(out.parent.iterdir()) == [out]  # written atomically: no temporary file left


@pytest.mark.filterwarnings("ignore:.*torch.jit.load.*deprecated:FutureWarning")
def test_torchscript_export_loads_without_igkd(trained, tmp_path, capsys):
    folder, splits, _ = trained
    student = igkd.load_student(folder)
    export(folder, "torchscript", tmp_path / "student.ts", capsys)
    x = student.inputs(splits.test_images)
    torch.testing.assert_close(run_without_igkd(docs_recipe("torch.jit.load("), tmp_path, x), student(x))
    extra = {"igkd.json": ""}
    torch.jit.load(tmp_path / "student.ts", _extra_files=extra)
    description = json.loads(extra["igkd.json"])
    assert description["classes"] == list(splits.classes) and description["normalize"] == NORMALIZE


def test_state_dict_export_rebuilds_with_torchvision_by_the_docs_recipe(trained, tmp_path, capsys):
    folder, splits, _ = trained
    student = igkd.load_student(folder)
    export(folder, "state_dict", tmp_path / "student_state.pt", capsys)
    saved = torch.load(tmp_path / "student_state.pt", weights_only=True)
    assert json.loads(json.dumps(saved["description"])) == saved["description"]  # plain JSON data
    assert saved["description"]["architecture"]["feature_blocks"] == 19 - DROP
    assert saved["description"]["student"] == STUDENT_ID
    x = student.inputs(splits.test_images)
    recipe = docs_recipe("torchvision.models.MobileNetV2")
    torch.testing.assert_close(run_without_igkd(recipe, tmp_path, x), student(x))


def test_onnx_export_gives_the_same_logits_in_onnx_runtime(trained, tmp_path, capsys):
    for package in ("onnx", "onnxscript", "onnxruntime"):
        pytest.importorskip(package, reason=f"{package} is not installed (pip install 'igkd[export]' onnxruntime)")
    folder, splits, _ = trained
    student = igkd.load_student(folder)
    export(folder, "onnx", tmp_path / "student.onnx", capsys)
    x = student.inputs(splits.test_images)
    recipe = docs_recipe("onnxruntime.InferenceSession")
    torch.testing.assert_close(run_without_igkd(recipe, tmp_path, x, numpy_input=True), student(x))
    import onnx

    metadata = {p.key: p.value for p in onnx.load(tmp_path / "student.onnx").metadata_props}
    assert json.loads(metadata["igkd"])["classes"] == list(splits.classes)


@pytest.mark.parametrize("missing", ["onnx", "onnxscript"])
def test_onnx_without_its_packages_names_the_extra(trained, tmp_path, monkeypatch, capsys, missing):
    """Whatever this machine has installed: one package present (a stand-in module), the other
    not (None in sys.modules makes its import fail)."""
    folder, _, _ = trained
    for name in ("onnx", "onnxscript"):
        monkeypatch.setitem(sys.modules, name, None if name == missing else types.ModuleType(name))
    out = tmp_path / "student.onnx"
    assert main(["export", str(folder), "--format", "onnx", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and f"({missing} is missing)" in err and "pip install 'igkd[export]'" in err
    assert not out.exists()


def test_the_command_line_offers_every_export_format():
    from igkd.training.export import FORMATS, export_student

    assert EXPORT_FORMATS == FORMATS
    with pytest.raises(InputError, match="--format pickle: expected one of torchscript, onnx, state_dict"):
        export_student("anywhere", "pickle", "out")
