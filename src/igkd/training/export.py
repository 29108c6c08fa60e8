"""`igkd export`: a trained student as a file that loads without igkd.

Every format holds the same network: float [0,1] RGB (N,3,H,W) in, logits (N,K) out, the
student's input normalisation (if any) built in; and the same description (`describe`:
architecture arguments, classes, input convention, source run). How to load each one:
docs/use-a-student.md.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from igkd.io import InputError, atomic_path, save_torch
from igkd.training.loaded import INPUT_CONVENTION, LoadedStudent, load_student

FORMATS = ("torchscript", "onnx", "state_dict")
DESCRIPTION_FILE = "igkd.json"  # torchscript: the description as an extra file in the archive
DESCRIPTION_KEY = "igkd"  # onnx: the description in the model's metadata_props
FALLBACK_IMAGE_SIZE = 32  # example input side for an older run whose image size is unknown
EXAMPLE_BATCH = 2  # a batch of 1 would let the onnx exporter fix the batch dimension
ONNX_PACKAGES = ("onnx", "onnxscript")  # what torch.onnx.export (torch.export-based) imports
ONNX_OPSET = 18


def describe(student: LoadedStudent, fmt: str) -> dict:
    """What the file holds, as plain JSON data."""
    spec = student.spec
    return {
        "format": fmt,
        "source_run": str(student.run_dir),
        "classes": list(spec.classes),
        "image_size": spec.image_size,
        "input": INPUT_CONVENTION,
        "normalize": spec.record()["normalize"],
        "architecture": spec.architecture(),
        "student": spec.student,
    }


def export_student(run_dir, fmt: str, out) -> Path:
    """Write the student of `run_dir` to `out` in format `fmt` (atomically); return `out`."""
    if fmt not in FORMATS:
        raise InputError(f"--format {fmt}: expected one of {', '.join(FORMATS)}")
    if fmt == "onnx":
        _require_onnx()
    student = load_student(run_dir)
    out = Path(out)
    {"torchscript": _torchscript, "onnx": _onnx, "state_dict": _state_dict}[fmt](student, out)
    return out


def _example(student: LoadedStudent) -> torch.Tensor:
    size = student.image_size or FALLBACK_IMAGE_SIZE
    return torch.rand(EXAMPLE_BATCH, 3, size, size, generator=torch.Generator().manual_seed(0))


def _torchscript(student: LoadedStudent, out: Path) -> None:
    """Traced (the network has no data-dependent branch). PyTorch 2.14 warns that TorchScript
    is deprecated on every call: asked for by name here, so those warnings are left out."""
    extra = {DESCRIPTION_FILE: json.dumps(describe(student, "torchscript"), indent=2)}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit.*deprecated")
        traced = torch.jit.trace(student.net, _example(student))
        with atomic_path(out) as tmp:
            torch.jit.save(traced, str(tmp), _extra_files=extra)


def _state_dict(student: LoadedStudent, out: Path) -> None:
    """The weights with the keys of the docs' torchvision recipe (an nn.Sequential of the
    normalisation, the feature blocks, pooling, flatten and the classifier; for a student
    of another family, of the normalisation and the network: LoadedStudent.net)."""
    state = {key: value.detach().cpu().clone() for key, value in student.net.state_dict().items()}
    save_torch(out, {"state_dict": state, "description": describe(student, "state_dict")})


def _require_onnx() -> None:
    import importlib

    for name in ONNX_PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise InputError(
                f"--format onnx needs the packages {' and '.join(ONNX_PACKAGES)} ({name} is missing): "
                "pip install 'igkd[export]'"
            ) from err


def _onnx(student: LoadedStudent, out: Path) -> None:
    from torch.export import Dim

    program = torch.onnx.export(
        student.net,
        (_example(student),),
        dynamo=True,
        dynamic_shapes=({0: Dim("batch")},),
        input_names=["images"],
        output_names=["logits"],
        opset_version=ONNX_OPSET,
        verbose=False,
    )
    program.model.metadata_props[DESCRIPTION_KEY] = json.dumps(describe(student, "onnx"))
    with atomic_path(out) as tmp:
        program.save(str(tmp))


def export_command(args) -> None:
    """`igkd export RUN_DIR --format F OUT` (igkd.cli)."""
    out = export_student(args.run_dir, args.format, args.out)
    print(f"wrote {out} ({args.format}): float [0,1] (N,3,H,W) in, logits out; docs/use-a-student.md loads it")
