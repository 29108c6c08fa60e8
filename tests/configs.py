"""Small training settings the unit tests share: the config sections, at tiny sizes."""

# teacher.* for a width-0.25 teacher on 8x8 digits
TEACHER = {
    "source": "train",
    "weights": None,
    "width": 0.25,
    "epochs": 4,
    "batch_size": 64,
    "lr": 0.05,
    "momentum": 0.9,
    "nesterov": True,
    "weight_decay": 5e-4,
    "warmup_epochs": 1,
    "crop_padding": 1,
    "flip": False,
    "eval_every": 1,
    "seed": 0,
}

# students.* for one short width-0.25 student run
STUDENT = {
    "seed_offset": 0,
    "exclude_val": False,
    "control_seed": 1,
    "width": 0.25,
    "epochs": 1,
    "batch_size": 64,
    "lr": 0.001,
    "weight_decay": 0.0,
    "crop_padding": 1,
    "flip": False,
    "normalize": None,
    "eval_every": 1,
    "kd": {"alpha": 0.01, "temperature": 2.5},
    "ig": {"attribution": "ig", "p": 0.1, "power_min": 1.0, "power_max": 2.0, "blend": 0.5},
    "at": {"gamma": 0.8},
}

# students.* of the resume tests: width 1.0, the overlay on half the images, crop and flip
RESUMABLE_STUDENT = {
    **STUDENT,
    "exclude_val": True,
    "width": 1.0,
    "kd": {"alpha": 0.5, "temperature": 2.0},
    "ig": {"attribution": "ig", "p": 0.5, "power_min": 1.0, "power_max": 2.0, "blend": 0.5},
    "flip": True,
}


def student_run(method: str, drop: int | str, run: int = 0, fraction: float = 0.8, students: dict = STUDENT):
    """The StudentRun of `method` on a student (an id, or the paper's MobileNetV2 by its
    drop) with the `students` recipe (igkd.experiments)."""
    from igkd.experiments import StudentRecipe, StudentRun
    from igkd.registry import mobilenet

    student = mobilenet(drop) if isinstance(drop, int) else drop
    return StudentRun(method, student, fraction, run, StudentRecipe.from_config(students))
