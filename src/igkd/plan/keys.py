"""The calibration key of each number a job's cost depends on, built from the config.

One place decides which settings a measured number depends on (model, width, image
size, batch, threads, layout, classes, precision), so the cost model, the disk estimate and the
calibration always ask for the same keys.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from igkd.plan.calibration import RSS_SUFFIX, Key
from igkd.plan.measure import EVAL_BATCH, EVAL_PRECISION

# IG points per pass the calibration measures: the precompute's internal_batch_size when it
# is a number, else (auto) what the job would choose, at most AUTO_MAX_POINTS (as
# igkd.attribution.ig_memory) and, on a CPU, at most CPU_MAX_POINTS: a CPU's throughput is
# flat well before that, and the calibration should not need the gigabytes 1024 points of
# a width-1.0 teacher hold.
AUTO_MAX_POINTS = 1024
CPU_MAX_POINTS = 256


@dataclass(frozen=True)
class ModelSettings:
    """What the keys share: the config's model settings and the data's shape."""

    teacher_width: float
    student_width: float
    teacher_batch: int
    student_batch: int
    image_size: int
    classes: int
    channels_last: bool
    precision: str = "fp32"  # runtime.precision: what a training step (and AT's teacher tap) runs in

    @classmethod
    def from_config(cls, config: dict, classes: int) -> ModelSettings:
        return cls(
            teacher_width=float(config["teacher"]["width"]),
            student_width=float(config["students"]["width"]),
            teacher_batch=int(config["teacher"]["batch_size"]),
            student_batch=int(config["students"]["batch_size"]),
            image_size=int(config["dataset"]["image_size"]),
            classes=int(classes),
            channels_last=bool(config["runtime"]["channels_last"]),
            precision=str(config["runtime"].get("precision", "fp32")),
        )

    def _common(self, threads: int | None) -> dict:
        return {
            "image_size": self.image_size,
            "threads": threads,
            "channels_last": self.channels_last,
            "classes": self.classes,
        }

    def teacher_step(self, threads: int) -> Key:
        return Key(
            "teacher_step",
            width=self.teacher_width,
            batch=self.teacher_batch,
            precision=self.precision,
            **self._common(threads),
        )

    def student_step(self, student: str, threads: int) -> Key:
        return Key(
            "student_step",
            width=self.student_width,
            student=student,
            batch=self.student_batch,
            precision=self.precision,
            **self._common(threads),
        )

    def teacher_tap(self, student: str, threads: int) -> Key:
        """The teacher's forward to the block attention transfer matches with `student`:
        students with the same teacher block share the number."""
        from igkd.architectures import at_tap

        return Key(
            "teacher_tap",
            width=self.teacher_width,
            tap=at_tap(student)[1],
            batch=self.student_batch,
            precision=self.precision,
            **self._common(threads),
        )

    def teacher_eval(self, threads: int) -> Key:
        return Key(
            "teacher_eval",
            width=self.teacher_width,
            batch=EVAL_BATCH,
            precision=EVAL_PRECISION,
            **self._common(threads),
        )

    def student_eval(self, student: str, threads: int) -> Key:
        return Key(
            "student_eval",
            width=self.student_width,
            student=student,
            batch=EVAL_BATCH,
            precision=EVAL_PRECISION,
            **self._common(threads),
        )

    def ig(self, points: int, threads: int) -> Key:
        return Key("ig", width=self.teacher_width, batch=points, **self._common(threads))

    def teacher_bytes(self) -> Key:
        return Key("teacher_bytes", width=self.teacher_width, classes=self.classes)

    def student_bytes(self, student: str) -> Key:
        return Key("student_bytes", width=self.student_width, student=student, classes=self.classes)


def peak_rss(key: Key) -> Key:
    """The key of the peak host memory of a fresh process running `key`'s step (its *_rss kind)."""
    return dataclasses.replace(key, kind=key.kind + RSS_SUFFIX)


def startup(torch_job: bool) -> Key:
    return Key("startup_training" if torch_job else "startup_analysis")


def ig_points_per_pass(precompute: dict, attribution: str, device_kind: str) -> int:
    """Points per IG pass the precompute job would use (see AUTO_MAX_POINTS, CPU_MAX_POINTS)."""
    settings = precompute.get(attribution) or {}
    setting = settings.get("internal_batch_size", "auto")
    per_image = settings.get("max_steps") if settings.get("tolerance") is not None else settings.get("steps")
    per_call = int(per_image or settings.get("samples") or 1) * int(precompute["batch_size"])
    points = int(setting) if setting not in (None, "auto") else min(AUTO_MAX_POINTS, per_call)
    return min(points, CPU_MAX_POINTS) if device_kind == "cpu" else points
