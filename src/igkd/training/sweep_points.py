"""What one sweep grid point trains: a StudentRun built from the shared recipe.

Kept apart from igkd.analysis.sweeps (grids and tables) so the table figures do not depend
on the students' recipe, and torch-free: the workflow builds the sweeps' params from it on
every dry run.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

from igkd.analysis.sweeps import SECTION, SWEEP_KEYS
from igkd.experiments import StudentRecipe, StudentRun

# students keys every grid point sets itself: left out of a point's settings, so editing
# them does not rerun the sweeps.
POINT_KEYS = ("exclude_val", "epochs", "eval_every")


def sweep_method(sweeps_cfg: Mapping, sweep: str) -> str:
    return sweeps_cfg[SECTION[sweep]]["method"]


def point_settings(recipe: StudentRecipe, sweeps_cfg: Mapping, sweep: str) -> tuple[dict, dict]:
    """(students, sweeps) settings every point of `sweep` shares: the recipe keys its method
    reads except those the points set (the swept keys, epochs, the validation split), and
    the sweep's student, epochs, fraction and method (with the fingerprints of the plugin
    code they use, if any). No grid lists: adding a grid value must
    not rerun the points already trained."""
    method = sweep_method(sweeps_cfg, sweep)
    students = recipe.settings_for(method)
    for key in POINT_KEYS:
        students.pop(key)
    for section, field in SWEEP_KEYS[sweep].values():
        students[section] = {k: v for k, v in students[section].items() if k != field}
    sweeps = {k: sweeps_cfg[k] for k in ("student", "epochs", "fraction")}
    sweeps[SECTION[sweep]] = {"method": method}
    plugins = StudentRun(method, sweeps_cfg["student"], 1.0, 0, recipe).plugins()
    if plugins:
        sweeps["plugins"] = plugins
    return students, sweeps


def point_run(students: Mapping, sweeps_cfg: Mapping, sweep: str, values: Mapping[str, float], run: int) -> StudentRun:
    """The student one grid point trains: the shared settings (point_settings), the rows
    outside the validation split, the sweep's epochs with one evaluation at the end, and
    the swept keys set to the point's values."""
    settings = copy.deepcopy(dict(students))
    settings.update(exclude_val=True, epochs=sweeps_cfg["epochs"], eval_every=sweeps_cfg["epochs"])
    for key, (section, field) in SWEEP_KEYS[sweep].items():
        settings[section] = {**settings.get(section, {}), field: float(values[key])}
    method = sweep_method(sweeps_cfg, sweep)
    return StudentRun(method, sweeps_cfg["student"], sweeps_cfg["fraction"], run, StudentRecipe.from_settings(settings))
