# Scientific controls (docs/controls.md): snakemake --cores N controls
# The control students themselves are ordinary distill_student jobs (same recipe as every
# method, so they compare like for like); these rules add the reference code's misaligned
# precompute, the controls' statistics and their figure.


rule precompute_reference_defect:
    input:
        data=rules.prepare_data.output.data,
        teacher_model=rules.train_teacher.output.model,
        teacher_metrics=rules.train_teacher.output.metrics,
    output:
        h5=f"{RESULTS}/precompute/{{attribution}}_reference_defect.h5",
    log:
        f"{LOGS}/precompute_{{attribution}}_reference_defect.log",
    benchmark:
        f"{BENCH}/precompute_{{attribution}}_reference_defect.tsv"
    priority: FIRST_AFTER_TEACHER
    conda:
        "../../envs/train.yaml"
    threads: THREADS["precompute"]
    resources:
        runtime=12 * 60,
        gpu=GPU_WHOLE,
    params:
        attribution=lambda wc: precompute_params(config["precompute"], wc.attribution),
        loader=REFERENCE_LOADER,
        teacher_width=config["teacher"]["width"],
        code=code_fingerprint("precompute_attributions"),
    script:
        "../scripts/precompute_attributions.py"


rule compare_controls:
    input:
        metrics=control_files("metrics.json"),
        runtime=control_files("runtime.json"),
        teacher_metrics=rules.train_teacher.output.metrics,
    output:
        runs=f"{RESULTS}/tables/controls_runs.csv",
        summary=f"{RESULTS}/stats/controls_summary.csv",
        comparisons=f"{RESULTS}/stats/controls_comparisons.csv",
        levels=f"{RESULTS}/stats/controls_levels.csv",
        markdown=f"{RESULTS}/stats/controls.md",
    log:
        f"{LOGS}/compare_controls.log",
    benchmark:
        f"{BENCH}/compare_controls.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        controls=CAMPAIGN.controls and CAMPAIGN.controls.comparison(),
        stats=config["stats"],
        code=code_fingerprint("compare_controls"),
    script:
        "../scripts/compare_controls.py"


rule fig_controls:
    input:
        runs=rules.compare_controls.output.runs,
        summary=rules.compare_controls.output.summary,
        levels=rules.compare_controls.output.levels,
        teacher_metrics=rules.train_teacher.output.metrics,
    output:
        pdf=figure_report("controls", "pdf", "Controls"),
        png=figure_report("controls", "png", "Controls"),
    log:
        f"{LOGS}/fig_controls.log",
    benchmark:
        f"{BENCH}/fig_controls.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        code=code_fingerprint("fig_controls"),
    script:
        "../scripts/fig_controls.py"


rule controls:
    input:
        rules.compare_controls.output,
        rules.fig_controls.output,
