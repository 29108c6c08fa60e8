# igkd: knowledge distillation with integrated gradients, from data to figures.
# Table of contents: common helpers, then one rule file per stage.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/teacher.smk"
include: "workflow/rules/precompute.smk"
include: "workflow/rules/students.smk"
include: "workflow/rules/collect.smk"
include: "workflow/rules/timing.smk"
include: "workflow/rules/external.smk"
include: "workflow/rules/sweeps.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/controls.smk"
include: "workflow/rules/paper.smk"


rule all:
    default_target: True
    input:
        final_outputs(),


# The paper's experiments by name (docs/experiments.md): snakemake --cores N ablation
rule ablation:
    input:
        experiment_outputs("ablation"),


rule montecarlo:
    input:
        experiment_outputs("montecarlo"),


rule compression:
    input:
        experiment_outputs("compression"),


rule grid:
    input:
        experiment_outputs("grid"),


rule kd_grid:
    input:
        experiment_outputs("kd_grid"),


rule overlay_p:
    input:
        experiment_outputs("overlay_p"),


rule timing:
    input:
        experiment_outputs("timing"),


rule external:
    input:
        external_root_required,
