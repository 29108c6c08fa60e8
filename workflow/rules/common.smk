# Config validation and the helpers that turn the config into file lists.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from igkd.config import validate_config
from igkd.folders import logs_dir, results_dir
from igkd.io import InputError
from igkd.identity import precompute_params, prepare_params, teacher_params
from igkd.experiments import Campaign
from igkd.training.methods import get_method, precompute_stem
from igkd.provenance import fingerprint
from igkd import registry

# Plugins (config `plugins`) load here, before the names they register are checked; files
# are looked up beside the --configfile files, then the workflow's folder and the working one.
CONFIG_DIRS = (*(Path(f).parent for f in workflow.configfiles), Path(workflow.basedir))
config.update(validate_config(config, config_dirs=CONFIG_DIRS))

SCRIPTS = Path(workflow.basedir) / "workflow" / "scripts"


def code_fingerprint(script):
    """Hash of the igkd modules workflow/scripts/<script>.py imports, transitively: a
    rule's `code` param, so editing one of them reruns that rule (igkd.provenance)."""
    return fingerprint(SCRIPTS / f"{script}.py")


DS = config["dataset"]["name"]  # what is read (digits, cifar10, imagefolder)
RESULTS = results_dir(config)  # where it goes: results/<dataset.tag, default the name>
LOGS = logs_dir(config)
BENCH = f"{RESULTS}/benchmarks"
STUDENTS = config["students"]
# Every student of every enabled experiment (and the controls), each identified by what
# determines it (igkd.experiments.StudentRun): its folder, params and row derive from it.
CAMPAIGN = Campaign.from_config(config)
EXPERIMENTS = CAMPAIGN.experiments  # every student experiment: a target by name
# Every experiment of the paper is a target (docs/experiments.md); `all` builds the
# enabled ones (experiments.grid is off by default: `snakemake grid` runs it anyway).
ALL_TARGETS = [
    *CAMPAIGN.enabled,
    "kd_grid",
    "overlay_p",
    "controls",
    "timing",
    "external",
    "paper",
]
CONTROLS = config["controls"]
# The loader the reference code precomputed over: the students' crop + flip, shuffled.
REFERENCE_LOADER = {
    "seed": CONTROLS["loader_seed"],
    "crop_padding": STUDENTS["crop_padding"],
    "flip": STUDENTS["flip"],
}
THREADS = config["runtime"]["threads"]
# Resource `gpu` counts GPU slots (docs/gpus.md): runtime.students_per_gpu per GPU; a
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
    method="[A-Za-z][A-Za-z0-9_]*(@[a-z][a-z0-9_]*)?",
    student=r"[a-z][a-z0-9_]*-[a-z]+\d+",
    fraction=r"\d+\.\d+",
    run=r"\d+",
    attribution="|".join(sorted(registry.ATTRIBUTIONS, key=len, reverse=True)),
    experiment="|".join(EXPERIMENTS) or "none",


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


def student_run(wildcards):
    """The StudentRun a distill_student job trains (its params: exactly what determines it)."""
    return CAMPAIGN.run(
        wildcards.method, wildcards.student, wildcards.fraction, wildcards.run
    )


def student_plugins(students):
    """Fingerprints of the plugin architectures among `students` (a rule param)."""
    archs = [("student", registry.parse_student(s)[0]) for s in students]
    return registry.plugin_fingerprints(archs)


def attribution_plugins(names):
    """Fingerprints of the plugin attributions among `names` (a rule param)."""
    return registry.plugin_fingerprints(
        [("attribution", registry.attribution(n)) for n in names]
    )


def run_files(runs, name):
    return [f"{run.folder(RESULTS)}/{name}" for run in runs]


def experiment_files(experiment, name):
    """`name` (metrics.json, runtime.json, model.pt) of every run of an experiment."""
    return run_files(CAMPAIGN.runs(experiment), name)


def control_files(name="metrics.json"):
    """`name` of the controls' runs and their comparison methods' paired runs."""
    return run_files(CAMPAIGN.control_runs(), name)


def experiment_methods(experiment):
    """An experiment's methods in config order."""
    return list(EXPERIMENTS[experiment].methods)


def power_figure_family():
    """fig_power's methods panel: figures.power.experiment's family, or the first tested one."""
    tested = tested_experiments()
    chosen = FIGURES["power"]["experiment"]
    return chosen if chosen in tested else (tested[0] if tested else None)


def power_figure_runs():
    family = power_figure_family()
    return [f"{RESULTS}/tables/{family}/runs.csv"] if family else []


def tested_experiments():
    """Enabled experiments with at least two runs per group: those with tests and power."""
    return [name for name in CAMPAIGN.enabled if EXPERIMENTS[name].runs >= 2]


def stats_outputs(experiment):
    return [
        f"{RESULTS}/stats/{experiment}/{name}"
        for name in ("summary.csv", "comparisons.csv", "normality.csv", "stats.md")
    ]


def table_outputs(experiment):
    return [
        f"{RESULTS}/tables/{experiment}/{name}"
        for name in ("runs.csv", "method_means.csv")
    ]


def power_inputs(wildcards):
    """What stats/power.csv reads: each tested experiment's runs, comparisons and run
    times (one Holm family each), and the controls' where controls.methods is not empty.
    """
    inputs = {}
    for name in tested_experiments():
        inputs[f"{name}_runs"] = f"{RESULTS}/tables/{name}/runs.csv"
        inputs[f"{name}_comparisons"] = f"{RESULTS}/stats/{name}/comparisons.csv"
        inputs[f"{name}_runtime"] = experiment_files(name, "runtime.json")
    if CONTROLS["methods"]:
        inputs.update(
            controls_runs=f"{RESULTS}/tables/controls_runs.csv",
            controls_comparisons=f"{RESULTS}/stats/controls_comparisons.csv",
            controls_runtime=control_files("runtime.json"),
        )
    return inputs


def power_outputs():
    """stats/power.csv and fig_power, where some experiment or the controls have tests."""
    if not (tested_experiments() or CONTROLS["methods"]):
        return []
    return [f"{RESULTS}/stats/power.csv", f"{RESULTS}/figures/power.pdf"]


def control_outputs():
    """The controls' report and figure; none when controls.methods is empty."""
    if not CONTROLS["methods"]:
        return []
    return [f"{RESULTS}/stats/controls.md", f"{RESULTS}/figures/controls.pdf"]


def experiment_outputs(name):
    """What one experiment target builds (docs/experiments.md)."""
    if name in EXPERIMENTS:
        outputs = table_outputs(name) + stats_outputs(name)
        if name == "compression":
            outputs += [
                f"{RESULTS}/figures/compression.pdf",
                f"{RESULTS}/figures/latency.pdf",
            ]
        if name == FIGURES["mc_hist"]["experiment"]:
            outputs.append(f"{RESULTS}/figures/mc_hist.pdf")
        if name == power_figure_family():
            outputs += power_outputs()
        return outputs
    if name in ("kd_grid", "overlay_p"):
        table = "kd" if name == "kd_grid" else "overlay_p"
        return [f"{RESULTS}/sweeps/{table}.csv", f"{RESULTS}/figures/{name}.pdf"]
    if name == "controls":
        return control_outputs()
    if name == "timing":
        return timing_outputs()[:1]
    if name == "external":
        return external_outputs()
    if name == "paper":
        return paper_outputs()
    return []


def precompute_outputs():
    """One file per precompute.attributions entry, whether a method reads it yet or not."""
    return [
        f"{RESULTS}/precompute/{a}.h5" for a in config["precompute"]["attributions"]
    ]


def target_outputs():
    """What the targets in ALL_TARGETS build, with the power table and the IG-convergence
    figure (their figures are what `figures` builds beyond the shared ones)."""
    outputs = [o for name in ALL_TARGETS for o in experiment_outputs(name)]
    return list(dict.fromkeys(outputs + power_outputs() + convergence_outputs()))


def final_outputs():
    """Every enabled experiment of the paper, the figures of the stages they share, and
    the precomputed attributions."""
    outputs = [*target_outputs(), *shared_figure_pdfs(), *timing_outputs()]
    return list(dict.fromkeys(outputs + precompute_outputs()))


# ---- sweeps (workflow/rules/sweeps.smk) and figures (workflow/rules/figures.smk)
from igkd.analysis.sweeps import SECTION, grid_points, lookup_point
from igkd.training.sweep_points import point_settings

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
    return point_settings(CAMPAIGN.recipe, SWEEPS, wildcards.sweep)[0]


def sweep_settings(wildcards):
    return point_settings(CAMPAIGN.recipe, SWEEPS, wildcards.sweep)[1]


def sweep_metrics(wildcards):
    return sweep_files(wildcards.sweep, "metrics.json")


ATTENTION = FIGURES["attention"]
ATTENTION_EXPERIMENT = config["experiments"][ATTENTION["experiment"]]


def attention_student():
    return ATTENTION["student"] or ATTENTION_EXPERIMENT["students"][0]


def attention_students():
    """model.pt of the students fig_attention shows (figures.attention.methods, their
    runs in figures.attention.experiment: trained for the figure if that one is off)."""
    runs = [
        CAMPAIGN.run(
            method,
            attention_student(),
            ATTENTION_EXPERIMENT["fraction"],
            ATTENTION["run"],
        )
        for method in ATTENTION["methods"]
    ]
    return run_files(runs, "model.pt")


# Figures of the stages every experiment shares; each is also a rule fig_<name>.
SHARED_FIGURES = ["ig_overlay", "ig_power", "attention", "attributions"]


def shared_figure_pdfs():
    return [f"{RESULTS}/figures/{name}.pdf" for name in SHARED_FIGURES]


def figure_pdfs():
    """Every figure PDF of this config: the shared ones, each enabled experiment's, and
    the IG-convergence figure where the maps are refined."""
    figures = [p for p in target_outputs() if p.startswith(f"{RESULTS}/figures/")]
    return list(dict.fromkeys(shared_figure_pdfs() + figures))


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
    """timing.csv, and the accuracy-vs-latency figure where the compression experiment is on."""
    latency = (
        [f"{RESULTS}/figures/latency.pdf"] if "compression" in CAMPAIGN.enabled else []
    )
    return [f"{RESULTS}/timing.csv", *latency]


def external_outputs():
    """The external set's table and figure; none when external_eval.root is null."""
    if not EXTERNAL["root"]:
        return []
    name = EXTERNAL["name"]
    return [f"{RESULTS}/external/{name}.csv", f"{RESULTS}/figures/{name}.pdf"]


# `snakemake external` (or fig_imagenet, evaluate_external) with external_eval.root null.
EXTERNAL_ROOT_UNSET = (
    "external_eval.root: not set; the external evaluation (external, evaluate_external, "
    "fig_imagenet) needs an image folder root/<wnid or class>/*.png: add "
    "'external_eval: {root: /path/to/folder}' to a config file"
)


def external_root_required(wildcards):
    """Input of the external targets: their files, or, with external_eval.root null, the
    one line naming the key (raised only when one of them is asked for)."""
    if not EXTERNAL["root"]:
        raise InputError(EXTERNAL_ROOT_UNSET)
    return external_outputs()


def external_class_map():
    """external_eval.class_map: a path, or the name of a map shipped in src/igkd/data."""
    name = EXTERNAL["class_map"]
    if not name:
        return []
    shipped = PACKAGE / "data" / name
    return str(shipped) if Path(name).name == name and shipped.is_file() else name


def figure_report(name, fmt, category):
    """Figure file results/{tag}/figures/<name>.<fmt> as an HTML-report item, with the
    caption workflow/report/<name>.rst. Not category Statistics or Workflow: Snakemake
    links its own panels by those names, and a second link of one name is a docutils
    warning printed on every page of the report (tests/test_report_text.py)."""
    return report(
        f"{RESULTS}/figures/{name}.{fmt}",
        caption=f"../report/{name}.rst",
        category=category,
        labels={"figure": name, "format": fmt.upper()},
    )


# ---- the paper's published numbers (workflow/rules/paper.smk)
from igkd.analysis.paper_numbers import NUMBERS, comparability, load_numbers
from igkd.io import sha256_file

PAPER = comparability(config, load_numbers())
# The numbers file is package data, read where igkd is installed: its checksum, not its
# path, is compare_paper's param (a path would rerun the rule when the package moves).
PAPER_NUMBERS = sha256_file(NUMBERS) if PAPER.comparable else None


def paper_inputs(wildcards):
    """Where the run is comparable with the paper: the runs tables of the enabled
    experiments, the teacher's metrics and a real ImageNet-subset evaluation; else nothing.
    """
    inputs = {}
    if PAPER.comparable:
        inputs["runs"] = [
            f"{RESULTS}/tables/{name}/runs.csv" for name in CAMPAIGN.enabled
        ]
        inputs["teacher_metrics"] = f"{RESULTS}/teacher/metrics.json"
        if EXTERNAL["root"] and EXTERNAL["standin_rotation"] is None:
            inputs["external"] = f"{RESULTS}/external/{EXTERNAL['name']}.csv"
    return inputs


def paper_outputs():
    return [
        f"{RESULTS}/paper/{name}"
        for name in ("comparison.csv", "claims.csv", "comparison.md")
    ] + [f"{RESULTS}/figures/paper_comparison.{fmt}" for fmt in ("pdf", "png")]


# ---- the HTML report's front page (workflow/report/workflow.rst)
# Snakemake renders the front page with the config only, so the facts about this run it
# states are derived here and put under a key the schema does not have (after validation).
config["front_page"] = {
    "results": RESULTS,
    "students": len(CAMPAIGN.all_runs()),
    "experiments": CAMPAIGN.enabled,
    "controls": bool(CONTROLS["methods"]),
    "power": bool(power_outputs()),
    "paper": PAPER.param(),
}
