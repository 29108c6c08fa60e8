"""External evaluation: the shipped WNID map, label mapping of a generated WNID folder tree,
accuracy computation, scoring of saved models, and the demo's rotated stand-in."""

import re

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from igkd.analysis.external import (
    IMAGENET_CIFAR10_MAP,
    PACKAGE_DATA,
    RESULT_COLUMNS,
    EvalModel,
    EvalSet,
    eval_models,
    evaluate,
    load_eval_set,
    predict,
    score,
)
from igkd.architectures import build_student as build_by_id
from igkd.config import load_config
from igkd.data.imagefolder import read_class_map, read_eval_folder
from igkd.data.standin import DESCRIPTION_FILE, export_class_folder, rotate_images
from igkd.io import InputError, write_json
from igkd.models import build_student, build_teacher
from igkd.training.augment import normalize, to_float
from igkd.training.loop import to_chw_tensor

CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
AIRPLANE, CAT = CIFAR10.index("airplane"), CIFAR10.index("cat")
RED, BLUE = (220, 10, 10), (10, 10, 220)


# --------------------------------------------------------------------------- the shipped map


def test_shipped_map_is_the_papers_wnid_to_cifar10_mapping():
    mapping = read_class_map(IMAGENET_CIFAR10_MAP)
    assert len(mapping) == 98  # the authors' list; the paper says "about 105"
    assert all(re.fullmatch(r"n\d{8}", wnid) for wnid in mapping)
    assert set(mapping.values()) == set(CIFAR10) - {"deer", "horse"}  # no ImageNet deer or horse
    assert mapping["n02690373"] == mapping["n04552348"] == "airplane"  # airliner, warplane
    assert mapping["n02123045"] == "cat" and mapping["n01641577"] == "frog"  # tabby, bullfrog
    assert mapping["n04467665"] == "truck" and mapping["n02687172"] == "ship"  # trailer truck, carrier
    counts = {c: list(mapping.values()).count(c) for c in set(mapping.values())}
    assert counts == {"airplane": 3, "automobile": 7, "bird": 58, "cat": 5, "dog": 15, "frog": 3, "ship": 5, "truck": 2}


def test_strict_map_drops_only_the_three_doubtful_entries():
    full = read_class_map(IMAGENET_CIFAR10_MAP)
    strict = read_class_map(PACKAGE_DATA / "imagenet_cifar10_map_strict.csv")
    assert set(full) - set(strict) == {"n02692877", "n03895866", "n03930630"}  # airship, coach, pickup
    assert all(full[w] == c for w, c in strict.items())


# --------------------------------------------------------------------------- a generated WNID tree


def _png(path, colour, size=12):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), colour, dtype=np.uint8)).save(path)


@pytest.fixture
def wnid_tree(tmp_path):
    """airliner (2 red), warplane (1 red), tabby cat (2 blue + 1 red), an unmapped WNID."""
    root = tmp_path / "imagenet32"
    for name in ("a.png", "b.png"):
        _png(root / "n02690373" / name, RED)
    _png(root / "n04552348" / "c.png", RED)
    _png(root / "n02123045" / "d.png", BLUE)
    _png(root / "n02123045" / "e.png", BLUE)
    _png(root / "n02123045" / "f.png", RED)  # a cat the colour model will call an airplane
    _png(root / "n09999999" / "g.png", BLUE)  # not in the map: skipped
    return root


class ColourModel(nn.Module):
    """Logit of airplane = mean red, of cat = mean blue, others far below: a known classifier."""

    def forward(self, x):
        logits = torch.full((len(x), len(CIFAR10)), -10.0)
        logits[:, AIRPLANE] = x[:, 0].mean((1, 2))
        logits[:, CAT] = x[:, 2].mean((1, 2))
        return logits


def test_wnid_folders_map_to_cifar10_labels_in_the_models_class_order(wnid_tree):
    images, labels = load_eval_set(wnid_tree, 8, IMAGENET_CIFAR10_MAP, CIFAR10)
    assert images.shape == (6, 8, 8, 3) and images.dtype == np.uint8
    # sorted folders: n02123045 (cat x3), n02690373 (airplane x2), n04552348 (airplane); n09999999 skipped
    assert labels.tolist() == [CAT] * 3 + [AIRPLANE] * 3


def test_accuracy_counts_correct_predictions_overall_and_per_class(wnid_tree):
    images, labels = load_eval_set(wnid_tree, 8, IMAGENET_CIFAR10_MAP, CIFAR10)
    pred = predict(ColourModel(), to_chw_tensor(images, "cpu"), to_float, batch=4).numpy()
    assert pred.tolist() == [CAT, CAT, AIRPLANE, AIRPLANE, AIRPLANE, AIRPLANE]
    correct, per_class = score(pred, labels, CIFAR10)
    assert correct == 5
    table = per_class.set_index("class")
    assert table.loc["cat", ["correct", "n"]].tolist() == [2, 3]
    assert table.loc["airplane", ["correct", "n"]].tolist() == [3, 3]
    assert table.loc["cat", "accuracy"] == pytest.approx(200 / 3)


def test_a_map_onto_classes_the_model_lacks_is_an_error(wnid_tree, tmp_path):
    bad = tmp_path / "map.csv"
    bad.write_text("wnid,class\nn02690373,aeroplane\n")
    with pytest.raises(InputError, match=r"map.csv: classes \['aeroplane'\] are not among the model's classes"):
        load_eval_set(wnid_tree, 8, bad, CIFAR10)


def test_score_rejects_misaligned_predictions():
    with pytest.raises(ValueError, match="2 predictions for 3 labels"):
        score(np.array([0, 1]), np.array([0, 1, 2]), CIFAR10)


# --------------------------------------------------------------------------- scoring saved models


def _metrics(path, method, student, run):
    write_json(path, {"method": method, "student": student, "factor": 54.59, "run": run})
    return path


def test_evaluate_scores_saved_teacher_and_students_with_their_own_inputs(wnid_tree, tmp_path):
    torch.manual_seed(0)
    teacher, student = build_teacher(10, 0.25).eval(), build_student(13, 10, 0.25).eval()
    resnet = build_by_id("resnet-depth8", 10, 0.25).eval()  # a student of another family, by its id
    torch.save(teacher.state_dict(), tmp_path / "teacher.pt")
    torch.save(student.state_dict(), tmp_path / "student.pt")
    torch.save(resnet.state_dict(), tmp_path / "resnet.pt")
    mean, std = [0.4, 0.5, 0.6], [0.2, 0.25, 0.3]
    write_json(tmp_path / "teacher.json", {"normalize_mean": mean, "normalize_std": std, "params": 0})
    models = eval_models(
        tmp_path / "teacher.pt",
        tmp_path / "teacher.json",
        [tmp_path / "student.pt", tmp_path / "resnet.pt"],
        [
            _metrics(tmp_path / "student.json", "KD", "mobilenetv2-drop13", 1),
            _metrics(tmp_path / "resnet.json", "KD", "resnet-depth8", 0),
        ],
        None,
    )
    assert [(m.model, m.method, m.student, m.run, m.norm.mean, m.metrics) for m in models] == [
        ("teacher", "teacher", "teacher", 0, None, str(tmp_path / "teacher.json")),  # its norm: its metrics.json
        ("student", "KD", "mobilenetv2-drop13", 1, None, None),
        ("student", "KD", "resnet-depth8", 0, None, None),
    ]

    images, labels = load_eval_set(wnid_tree, 8, IMAGENET_CIFAR10_MAP, CIFAR10)
    results, per_class = evaluate(models, EvalSet(images, labels, CIFAR10, "generated tree"), (0.25, 0.25))
    assert list(results.columns) == RESULT_COLUMNS
    assert results["student"].tolist() == ["teacher", "mobilenetv2-drop13", "resnet-depth8"]
    assert results["n"].tolist() == [6, 6, 6] and (results["dataset"] == "generated tree").all()
    x = to_chw_tensor(images, "cpu")
    with torch.no_grad():  # the expected predictions: teacher normalised, students on [0,1] images
        expected = [teacher(normalize(to_float(x), mean, std)), student(to_float(x)), resnet(to_float(x))]
    expected = [logits.argmax(1) for logits in expected]
    for row, pred in zip(results.itertuples(), expected):
        correct = int((pred.numpy() == labels).sum())
        assert row.correct == correct and row.accuracy == pytest.approx(100 * correct / 6)
    assert per_class.groupby(["model", "student"], sort=False)["n"].sum().tolist() == [6, 6, 6]
    assert set(per_class["class"]) == {"airplane", "cat"}


def test_weights_of_another_architecture_are_an_input_error(tmp_path):
    torch.save(build_student(13, 10, 0.25).state_dict(), tmp_path / "student.pt")
    entry = EvalModel("student", "KD", "mobilenetv2-drop7", 7.3, 0, str(tmp_path / "student.pt"))
    images = np.zeros((2, 8, 8, 3), dtype=np.uint8)
    with pytest.raises(InputError, match="student.pt: weights do not fit the student architecture"):
        evaluate([entry], EvalSet(images, np.zeros(2, dtype=np.int64), CIFAR10, "x"), (0.25, 0.25))


def test_teacher_weights_of_another_architecture_are_an_input_error(tmp_path):
    torch.save(build_student(13, 10, 0.25).state_dict(), tmp_path / "teacher.pt")
    write_json(tmp_path / "teacher.json", {"normalize_mean": [0.5] * 3, "normalize_std": [0.25] * 3, "params": 0})
    (entry,) = eval_models(tmp_path / "teacher.pt", tmp_path / "teacher.json", [], [], None)
    images = np.zeros((2, 8, 8, 3), dtype=np.uint8)
    with pytest.raises(InputError, match="teacher.pt: weights do not fit the teacher"):
        evaluate([entry], EvalSet(images, np.zeros(2, dtype=np.int64), CIFAR10, "x"), (0.25, 0.25))


# --------------------------------------------------------------------------- the demo stand-in


def test_rotation_keeps_shape_and_zero_degrees_is_the_identity():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    assert np.array_equal(rotate_images(images, 0), images)
    rotated = rotate_images(images, 15)
    assert rotated.shape == images.shape and rotated.dtype == np.uint8
    assert not np.array_equal(rotated, images)
    # a 90-degree turn of a centred, symmetric-free pattern is numpy's rot90 (counter-clockwise)
    square = np.zeros((1, 8, 8, 3), dtype=np.uint8)
    square[0, 1, 2:4] = 255
    assert np.array_equal(rotate_images(square, 90)[0], np.rot90(square[0]))


def test_stand_in_folder_reads_back_as_the_same_images_and_labels(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (7, 16, 16, 3), dtype=np.uint8)
    labels = np.array([2, 0, 1, 2, 0, 1, 1])
    classes = ("0", "1", "2")
    root = tmp_path / "standin"
    assert export_class_folder(images, labels, classes, root, "rotated stand-in") == 7
    assert (root / DESCRIPTION_FILE).read_text() == "rotated stand-in\n"
    back, back_labels, back_classes = read_eval_folder(root, 16, None, classes)
    order = np.argsort(labels, kind="stable")  # folders by class, files by source row
    assert back_classes == classes and back_labels.tolist() == labels[order].tolist()
    assert np.array_equal(back, images[order])
    assert not list(tmp_path.glob(".tmp.*"))  # built beside root and renamed into place


def test_demo_config_names_its_stand_in_and_the_full_config_has_no_external_set(repo):
    demo = load_config(repo / "config.yaml", repo / "profiles/demo/demo.yaml")["external_eval"]
    assert demo["standin_rotation"] == 15 and demo["class_map"] is None
    assert "stand-in" in demo["description"] and "digits" in demo["description"]
    full = load_config(repo / "config.yaml")["external_eval"]
    assert full["root"] is None and full["class_map"] == "imagenet_cifar10_map.csv"


@pytest.mark.parametrize(
    "override, message",
    [
        ({"root": None, "class_map": None}, "external_eval.root: required when external_eval.standin_rotation"),
        ({"root": "x", "class_map": "imagenet_cifar10_map.csv"}, "external_eval.class_map: must be null"),
    ],
)
def test_stand_in_settings_are_checked(repo, tmp_path, override, message):
    import yaml

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"external_eval": {"standin_rotation": 15, **override}}))
    with pytest.raises(InputError, match=message):
        load_config(repo / "config.yaml", path)
