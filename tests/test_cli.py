"""The `igkd` command line: model table, dataset checks, the installed console script."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fixtures_data import (
    EXTRACTED_DIR,
    FAKE_CLASSES,
    as_python3_dict,
    fake_cifar10_contents,
    write_fake_cifar10,
)
from igkd import __version__
from igkd.architectures import build_student
from igkd.cli import main
from igkd.data.cifar10 import CIFAR10_FOLDER, CIFAR10_TEST_FILES, CIFAR10_TRAIN_FILES
from igkd.data.store import Splits, write_data_h5
from igkd.models import build_teacher, multiply_adds, n_params

REPO = Path(__file__).resolve().parents[1]
N_PER_BATCH = 6
SEED = 4
COLUMNS = ("model", "params", "MMACs", "factor", "paper_factor", "last ch", "AT module", "AT block")
MOBILENET = "mobilenetv2-drop{}"


def _table(out: str) -> dict[str, dict[str, str]]:
    """Rows of the `igkd info` table keyed 'teacher' or the student id, as {column: cell}."""
    rows = {}
    for line in out.splitlines():
        cells = line.split()
        if cells and (cells[0] == "teacher" or "-" in cells[0]) and len(cells) == len(COLUMNS):
            rows[cells[0]] = dict(zip(COLUMNS, cells, strict=True))
    return rows


def _ids(*drops: int) -> list[str]:
    return [MOBILENET.format(d) for d in drops]


def test_info_default_table_is_the_paper_protocol(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    rows = _table(out)
    assert "10 classes, 32x32 inputs, teacher width 1.0, student width 1.0" in out
    assert [k for k in rows if k != "teacher"] == _ids(3, 5, 7, 9, 11, 13, 15, 17)  # by size
    teacher = rows["teacher"]
    assert teacher["params"] == "2,236,682"
    assert teacher["factor"] == teacher["paper_factor"] == "1.00"
    assert teacher["last ch"] == "1280" and teacher["AT module"] == teacher["AT block"] == "-"
    assert float(teacher["MMACs"]) == pytest.approx(multiply_adds(build_teacher(), 32) / 1e6, abs=0.01)
    drop5, drop7, drop13 = (rows[MOBILENET.format(d)] for d in (5, 7, 13))
    assert drop5["factor"] == drop5["paper_factor"] == "4.12"
    assert drop5["params"] == f"{n_params(build_student('mobilenetv2-drop5')):,}"
    assert drop7["factor"] == "7.29" and drop13["factor"] == "54.59"
    assert [rows[s]["AT block"] for s in _ids(3, 9, 15, 17)] == ["9", "4", "2", "0"]
    assert [rows[s]["AT module"] for s in _ids(3, 17)] == ["features.9", "features.0"]
    assert rows[MOBILENET.format(17)]["last ch"] == "16"


def test_info_reads_merged_configs_and_flags_override(capsys):
    configs = [
        "--config",
        str(REPO / "config.yaml"),
        "--config",
        str(REPO / "profiles/demo/demo.yaml"),
    ]
    assert main(["info", *configs]) == 0
    out = capsys.readouterr().out
    rows = _table(out)
    assert "10 classes, 16x16 inputs, teacher width 0.5, student width 0.5" in out
    assert [k for k in rows if k != "teacher"] == _ids(7, 13)
    teacher_params = n_params(build_teacher(10, 0.5))
    assert rows["teacher"]["params"] == f"{teacher_params:,}"
    assert rows["teacher"]["factor"] == "1.00"
    assert rows["teacher"]["paper_factor"] == f"{2_236_682 / teacher_params:.2f}"
    for student in _ids(7, 13):  # the demo compresses: every student is smaller than its teacher
        student_params = n_params(build_student(student, 10, 0.5))
        assert student_params < teacher_params
        assert rows[student]["factor"] == f"{teacher_params / student_params:.2f}"
        assert rows[student]["paper_factor"] == f"{2_236_682 / student_params:.2f}"

    assert main(["info", *configs, "--all", "--width", "0.5", "--image-size", "8", "--classes", "3"]) == 0
    out = capsys.readouterr().out
    rows = _table(out)
    assert "3 classes, 8x8 inputs, teacher width 0.5, student width 0.5" in out
    resnets = [f"resnet-depth{d}" for d in (8, 14, 20, 32, 44, 56, 110)]
    assert [k for k in rows if k != "teacher"] == [*_ids(*range(1, 19)), *resnets]
    student = build_student(MOBILENET.format(18), 3, 0.5)
    drop18 = rows[MOBILENET.format(18)]
    assert drop18["params"] == f"{n_params(student):,}" and drop18["AT block"] == "0"
    assert float(drop18["MMACs"]) == pytest.approx(multiply_adds(student, 8) / 1e6, abs=0.01)
    resnet = build_student("resnet-depth20", 3, 0.5)
    assert rows["resnet-depth20"]["params"] == f"{n_params(resnet):,}"
    assert (rows["resnet-depth20"]["AT module"], rows["resnet-depth20"]["AT block"]) == ("layer3", "9")
    assert rows["resnet-depth20"]["last ch"] == "32"  # 64 channels at width 0.5


def test_info_missing_config_is_one_error_line(tmp_path, capsys):
    assert main(["info", "--config", str(tmp_path / "none.yaml")]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"error: {tmp_path / 'none.yaml'}: config file not found\n"
    assert captured.out == ""


def _class_counts(out: str) -> dict[str, tuple[int, int]]:
    counts = {}
    for line in out.splitlines():
        cells = line.split()
        if len(cells) == 4 and cells[0].isdigit():
            counts[cells[1]] = (int(cells[2].replace(",", "")), int(cells[3].replace(",", "")))
    return counts


@pytest.mark.parametrize("str_keys", [False, True], ids=["bytes-keys", "str-keys"])
def test_check_data_on_cifar_tarball_and_folder(tmp_path, capsys, str_keys):
    protocol = pickle.DEFAULT_PROTOCOL if str_keys else 2  # a Python 3 dump / the published files
    tarball, _, _ = write_fake_cifar10(tmp_path, N_PER_BATCH, SEED, str_keys, protocol)
    contents = fake_cifar10_contents(N_PER_BATCH, SEED)
    train = np.concatenate([contents[n][b"labels"] for n in CIFAR10_TRAIN_FILES])
    test = np.concatenate([contents[n][b"labels"] for n in CIFAR10_TEST_FILES])
    expected = {name: (int((train == i).sum()), int((test == i).sum())) for i, name in enumerate(FAKE_CLASSES)}
    for source in (tarball, tmp_path / EXTRACTED_DIR, tmp_path / EXTRACTED_DIR / CIFAR10_FOLDER):
        assert main(["check-data", str(source), "--no-verify"]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"{source}: cifar10, ok\n")
        assert f"train {5 * N_PER_BATCH} images, test {N_PER_BATCH} images, 32x32x3 uint8" in out
        assert "10 classes:" in out and _class_counts(out) == expected

    assert main(["check-data", str(tarball)]) == 2  # the fixture is not the official file
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1
    assert captured.err.startswith(f"error: {tarball}: data_batch_1 has md5 ")


def test_check_data_on_a_malformed_str_keyed_batch(tmp_path, capsys):
    write_fake_cifar10(tmp_path, N_PER_BATCH, SEED, str_keys=True)
    batch = tmp_path / EXTRACTED_DIR / CIFAR10_FOLDER / "data_batch_2"
    content = as_python3_dict(fake_cifar10_contents(N_PER_BATCH, SEED)["data_batch_2"])
    del content["data"]
    batch.write_bytes(pickle.dumps(content))
    assert main(["check-data", str(tmp_path / EXTRACTED_DIR), "--no-verify"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: {tmp_path / EXTRACTED_DIR}: data_batch_2 lacks keys ['data']; expected "
        "['data', 'labels'], found ['batch_label', 'filenames', 'labels']\n"
    )


def _image_folder(root: Path) -> Path:
    layout = {"train/cat": 3, "train/dog": 2, "test/cat": 1, "test/dog": 2}
    for folder, count in layout.items():
        (root / folder).mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (12, 10), (10 * i, 20, 30)).save(root / folder / f"{i}.png")
    return root


def test_check_data_on_an_image_folder(tmp_path, capsys):
    root = _image_folder(tmp_path / "images")
    assert main(["check-data", str(root), "--image-size", "8"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{root}: imagefolder, ok\n")
    assert "train 5 images, test 3 images, 8x8x3 uint8" in out
    assert "2 classes:" in out and _class_counts(out) == {"cat": (3, 1), "dog": (2, 2)}

    (root / "test/bird").mkdir()
    Image.new("RGB", (12, 10)).save(root / "test/bird/0.png")
    assert main(["check-data", str(root), "--kind", "imagefolder"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {root / 'test'}: classes ['bird'] have no folder in {root / 'train'}\n"


def test_check_data_on_a_data_h5_prints_its_attrs(tmp_path, capsys):
    rng = np.random.default_rng(0)
    splits = Splits(
        rng.integers(0, 256, (6, 4, 4, 3), dtype=np.uint8),
        np.array([0, 1, 1, 0, 1, 1]),
        rng.integers(0, 256, (2, 4, 4, 3), dtype=np.uint8),
        np.array([1, 0]),
        ("a", "b"),
        np.array([2]),
    )
    path = tmp_path / "data.h5"
    write_data_h5(path, splits, {"source": "test"})
    assert main(["check-data", str(path)]) == 0
    out = capsys.readouterr().out
    assert "attr classes: a, b\n" in out and "attr source: test\n" in out
    assert f"attr checksum: {splits.checksum()}\n" in out
    assert "train 6 images, test 2 images, 4x4x3 uint8" in out
    assert "validation rows held out of train: 1" in out
    assert _class_counts(out) == {"a": (2, 1), "b": (4, 1)}


def test_bad_path_is_one_error_line_and_exit_2(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert main(["check-data", str(missing)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"error: {missing}: not found; expected a CIFAR-10 tarball or folder, an image folder "
        "with train/ and test/, or a data.h5\n"
    )
    not_h5 = tmp_path / "data.h5"
    not_h5.write_text("not hdf5")
    assert main(["check-data", str(not_h5)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {not_h5}: not a valid igkd dataset")


def test_installed_console_script_runs_and_help_stays_light():
    script = Path(sys.executable).with_name("igkd")
    assert script.is_file(), f"{script}: console script missing; run pip install -e ."
    helped = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0, helped.stderr
    assert "info" in helped.stdout and "check-data" in helped.stdout
    version = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60)
    assert version.stdout == f"igkd {__version__}\n"
    probe = (
        "import sys\nfrom igkd import cli\ntry:\n    cli.main(['check-data', '--help'])\n"
        "except SystemExit:\n    pass\nprint('torch' in sys.modules, 'h5py' in sys.modules)"
    )
    light = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert light.stdout.splitlines()[-1] == "False False"
