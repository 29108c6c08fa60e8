# Config validation and the helpers that turn the config into file lists.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from igkd.config import validate_config
from igkd.training.methods import get_method, precompute_stem
from igkd.provenance import fingerprint

config.update(validate_config(config))

SCRIPTS = Path(workflow.basedir) / "workflow" / "scripts"


def code_fingerprint(script):
    """Hash of the igkd modules workflow/scripts/<script>.py imports, transitively: a
    rule's `code` param, so editing one of them reruns that rule (igkd.provenance)."""
    return fingerprint(SCRIPTS / f"{script}.py")


DS = config["dataset"]["name"]
RESULTS = f"results/{DS}"
LOGS = f"logs/{DS}"
BENCH = f"{RESULTS}/benchmarks"
STUDENTS = config["students"]
# What one student run depends on: adding methods, drops or runs must not rerun finished runs.
STUDENT_RUN_SETTINGS = {
    k: v for k, v in STUDENTS.items() if k not in ("methods", "drops", "runs")
}
CONTROLS = config["controls"]
# The loader the reference code precomputed over: the students' crop + flip, shuffled.
REFERENCE_LOADER = {
    "seed": CONTROLS["loader_seed"],
    "crop_padding": STUDENTS["crop_padding"],
    "flip": STUDENTS["flip"],
}
THREADS = config["runtime"]["threads"]
# Resource `gpu` counts GPU slots (README "GPUs"): runtime.students_per_gpu per GPU; a
# student takes one, a teacher, precompute or timing job a whole GPU. Run with
# `--resources gpu=<GPUs x students_per_gpu>`. No GPU slots when the device is cpu/mps.
ON_GPU = config["runtime"]["device"] not in ("cpu", "mps")
GPU_ONE_SLOT = 1 if ON_GPU else 0
GPU_WHOLE = config["runtime"]["students_per_gpu"] if ON_GPU else 0
# Once the teacher is done the precompute jobs go before any student: the IG methods' and
# the controls' students wait on their files (left to the scheduler, the demo ran the
# reference-defect precompute after 30 students and its 2 control runs came last).
FIRST_AFTER_TEACHER = 10


wildcard_constraints:
    method="[A-Za-z_]+(@[a-z]+)?",
    drop=r"\d+",
    run=r"\d+",
    attribution="[a-z]+",


CIFAR = config["dataset"]["cifar10"]
CIFAR_ARCHIVE = f"{CIFAR['data_dir']}/cifar-10-python.tar.gz"


def raw_data_input(wildcards):
    if DS == "cifar10":
        return CIFAR["path"] if CIFAR["source"] == "path" else CIFAR_ARCHIVE
    if DS == "imagefolder":
        return config["dataset"]["imagefolder"]["root"]
    return []


def student_precompute(wildcards):
    # {attribution}.h5, the @attribution's file, or {attribution}_reference_defect.h5
    stem = precompute_stem(wildcards.method, STUDENTS["ig"]["attribution"])
    return f"{RESULTS}/precompute/{stem}.h5" if stem else []


def student_dirs():
    return expand(
        f"{RESULTS}/students/{{method}}/drop{{drop}}/run{{run}}",
        method=STUDENTS["methods"],
        drop=STUDENTS["drops"],
        run=range(STUDENTS["runs"]),
    )


def control_files(name="metrics.json"):
    """`name` of the controls' runs and their comparison methods' runs at controls.drop."""
    return expand(
        f"{RESULTS}/students/{{method}}/drop{{drop}}/run{{run}}/{name}",
        method=[*CONTROLS["methods"], *CONTROLS["compare_with"]],
        drop=CONTROLS["drop"],
        run=range(CONTROLS["runs"]),
    )


def power_inputs(wildcards):
    """What stats/power.csv reads: the methods' tables and run times, and the controls'
    where controls.methods is not empty."""
    inputs = {
        "runs": f"{RESULTS}/tables/runs.csv",
        "comparisons": f"{RESULTS}/stats/comparisons.csv",
        "runtime": expand("{dir}/runtime.json", dir=student_dirs()),
    }
    if CONTROLS["methods"]:
        inputs.update(
            controls_runs=f"{RESULTS}/tables/controls_runs.csv",
            controls_comparisons=f"{RESULTS}/stats/controls_comparisons.csv",
            controls_runtime=control_files("runtime.json"),
        )
    return inputs


def control_outputs():
    """The controls' report and figure; none when controls.methods is empty."""
    if not CONTROLS["methods"]:
        return []
    return [f"{RESULTS}/stats/controls.md", f"{RESULTS}/figures/controls.pdf"]


def final_outputs():
    return [
        f"{RESULTS}/tables/runs.csv",
        f"{RESULTS}/tables/method_means.csv",
        f"{RESULTS}/stats/summary.csv",
        f"{RESULTS}/stats/power.csv",
        *figure_pdfs(),
        *control_outputs(),
        *timing_outputs(),
        *external_outputs(),
    ]


# ---- sweeps (workflow/rules/sweeps.smk) and figures (workflow/rules/figures.smk)
from igkd.analysis.sweeps import SECTION, grid_points, lookup_point, point_settings

SWEEPS = config["sweeps"]
FIGURES = config["figures"]
SWEEP_NAMES = list(SECTION)


def sweep_method(sweep):
    return SWEEPS[SECTION[sweep]]["method"]


def sweep_precompute(sweep):
    stem = precompute_stem(sweep_method(sweep), STUDENTS["ig"]["attribution"])
    return f"{RESULTS}/precompute/{stem}.h5" if stem else []


def sweep_files(sweep, name):
    """`name` (metrics.json, history.csv) of every grid point and run, in grid order."""
    return [
        f"{RESULTS}/sweeps/{sweep}/{point}/run{run}/{name}"
        for point in grid_points(SWEEPS, sweep)
        for run in range(SWEEPS["runs"])
    ]


def sweep_all_points(sweep):
    """The points (swept values + run) of sweep_files(sweep, ...), in the same order."""
    return [
        {**values, "run": run}
        for values in grid_points(SWEEPS, sweep).values()
        for run in range(SWEEPS["runs"])
    ]


def sweep_point(wildcards):
    point = lookup_point(SWEEPS, wildcards.sweep, wildcards.point)
    return [{**point, "run": int(wildcards.run)}]


def sweep_students(wildcards):
    return point_settings(STUDENTS, SWEEPS, wildcards.sweep)[0]


def sweep_settings(wildcards):
    return point_settings(STUDENTS, SWEEPS, wildcards.sweep)[1]


def sweep_metrics(wildcards):
    return sweep_files(wildcards.sweep, "metrics.json")


def attention_drop():
    return FIGURES["attention"]["drop"] or STUDENTS["drops"][0]


def attention_students():
    """model.pt of the students fig_attention shows (figures.attention.methods)."""
    return [
        f"{RESULTS}/students/{method}/drop{attention_drop()}/run{FIGURES['attention']['run']}/model.pt"
        for method in FIGURES["attention"]["methods"]
    ]


# Figures built by the demo and `snakemake figures`; each is also a rule fig_<name>.
FIGURE_NAMES = [
    "compression",
    "ig_overlay",
    "ig_power",
    "kd_grid",
    "overlay_p",
    "mc_hist",
    "attention",
    "attributions",
    "power",
]


def figure_pdfs():
    """Every figure PDF of this config: the ones above plus the controls', latency,
    external-set and IG-convergence figures where those stages are on."""
    others = [
        *control_outputs(),
        *timing_outputs(),
        *external_outputs(),
        *convergence_outputs(),
    ]
    figures = [p for p in others if p.startswith(f"{RESULTS}/figures/")]
    return [f"{RESULTS}/figures/{name}.pdf" for name in FIGURE_NAMES] + figures


def convergence_outputs():
    """fig_ig_convergence, where the IG maps are refined to a tolerance (precompute.ig)."""
    ig = config["precompute"]["ig"]
    if "ig" not in config["precompute"]["attributions"] or ig["tolerance"] is None:
        return []
    return [f"{RESULTS}/figures/ig_convergence.pdf"]


# ---- timing (workflow/rules/timing.smk) and external evaluation (workflow/rules/external.smk)
from igkd.provenance import PACKAGE

TIMING = config["timing"]
EXTERNAL = config["external_eval"]


def timing_outputs():
    return [f"{RESULTS}/timing.csv", f"{RESULTS}/figures/latency.pdf"]


def external_outputs():
    """The external set's table and figure; none when external_eval.root is null."""
    if not EXTERNAL["root"]:
        return []
    name = EXTERNAL["name"]
    return [f"{RESULTS}/external/{name}.csv", f"{RESULTS}/figures/{name}.pdf"]


def external_class_map():
    """external_eval.class_map: a path, or the name of a map shipped in src/igkd/data."""
    name = EXTERNAL["class_map"]
    if not name:
        return []
    shipped = PACKAGE / "data" / name
    return str(shipped) if Path(name).name == name and shipped.is_file() else name


def figure_report(name, fmt, category):
    """Figure file results/{ds}/figures/<name>.<fmt> as an HTML-report item, with the
    caption workflow/report/<name>.rst."""
    return report(
        f"{RESULTS}/figures/{name}.{fmt}",
        caption=f"../report/{name}.rst",
        category=category,
        labels={"figure": name, "format": fmt.upper()},
    )
