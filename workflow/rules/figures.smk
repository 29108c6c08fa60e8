# Each figure is a rule whose name is its target: snakemake --cores 2 fig_compression


rule fig_compression:
    input:
        runs=f"{RESULTS}/tables/compression/runs.csv",
        teacher_metrics=rules.train_teacher.output.metrics,
        timing=f"{RESULTS}/timing.csv",
    output:
        pdf=figure_report("compression", "pdf", "Students vs compression"),
        png=figure_report("compression", "png", "Students vs compression"),
    log:
        f"{LOGS}/fig_compression.log",
    benchmark:
        f"{BENCH}/fig_compression.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        methods=experiment_methods("compression"),
        alpha=config["stats"]["alpha"],
        code=code_fingerprint("fig_compression"),
    script:
        "../scripts/fig_compression.py"


rule fig_ig_overlay:
    input:
        data=rules.prepare_data.output.data,
        ig=f"{RESULTS}/precompute/ig.h5",
    output:
        pdf=figure_report("ig_overlay", "pdf", "Integrated gradients"),
        png=figure_report("ig_overlay", "png", "Integrated gradients"),
    log:
        f"{LOGS}/fig_ig_overlay.log",
    benchmark:
        f"{BENCH}/fig_ig_overlay.tsv"
    conda:
        "../../envs/train.yaml"
    params:
        exponent=FIGURES["ig_overlay"]["exponent"],
        blend=STUDENTS["ig"]["blend"],
        code=code_fingerprint("fig_ig_overlay"),
    script:
        "../scripts/fig_ig_overlay.py"


rule fig_ig_power:
    input:
        data=rules.prepare_data.output.data,
        ig=f"{RESULTS}/precompute/ig.h5",
    output:
        pdf=figure_report("ig_power", "pdf", "Integrated gradients"),
        png=figure_report("ig_power", "png", "Integrated gradients"),
    log:
        f"{LOGS}/fig_ig_power.log",
    benchmark:
        f"{BENCH}/fig_ig_power.tsv"
    conda:
        "../../envs/train.yaml"
    params:
        row=FIGURES["ig_power"]["row"],
        exponents=FIGURES["ig_power"]["exponents"],
        code=code_fingerprint("fig_ig_power"),
    script:
        "../scripts/fig_ig_power.py"


rule fig_ig_convergence:
    input:
        ig=f"{RESULTS}/precompute/ig.h5",
    output:
        pdf=figure_report("ig_convergence", "pdf", "Integrated gradients"),
        png=figure_report("ig_convergence", "png", "Integrated gradients"),
    log:
        f"{LOGS}/fig_ig_convergence.log",
    benchmark:
        f"{BENCH}/fig_ig_convergence.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        code=code_fingerprint("fig_ig_convergence"),
    script:
        "../scripts/fig_ig_convergence.py"


rule fig_kd_grid:
    input:
        table=f"{RESULTS}/sweeps/kd.csv",
    output:
        pdf=figure_report("kd_grid", "pdf", "Hyper-parameter sweeps"),
        png=figure_report("kd_grid", "png", "Hyper-parameter sweeps"),
    log:
        f"{LOGS}/fig_kd_grid.log",
    benchmark:
        f"{BENCH}/fig_kd_grid.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        code=code_fingerprint("fig_kd_grid"),
    script:
        "../scripts/fig_kd_grid.py"


rule fig_overlay_p:
    input:
        table=f"{RESULTS}/sweeps/overlay_p.csv",
    output:
        pdf=figure_report("overlay_p", "pdf", "Hyper-parameter sweeps"),
        png=figure_report("overlay_p", "png", "Hyper-parameter sweeps"),
    log:
        f"{LOGS}/fig_overlay_p.log",
    benchmark:
        f"{BENCH}/fig_overlay_p.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        code=code_fingerprint("fig_overlay_p"),
    script:
        "../scripts/fig_overlay_p.py"


rule fig_mc_hist:
    input:
        runs=f"{RESULTS}/tables/{FIGURES['mc_hist']['experiment']}/runs.csv",
    output:
        pdf=figure_report("mc_hist", "pdf", "Students vs compression"),
        png=figure_report("mc_hist", "png", "Students vs compression"),
    log:
        f"{LOGS}/fig_mc_hist.log",
    benchmark:
        f"{BENCH}/fig_mc_hist.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        methods=experiment_methods(FIGURES["mc_hist"]["experiment"]),
        student=FIGURES["mc_hist"]["student"],
        bins=FIGURES["mc_hist"]["bins"],
        allow_mixed_conditions=config["stats"]["allow_mixed_conditions"],
        code=code_fingerprint("fig_mc_hist"),
    script:
        "../scripts/fig_mc_hist.py"


rule fig_attention:
    input:
        data=rules.prepare_data.output.data,
        teacher_model=rules.train_teacher.output.model,
        teacher_metrics=rules.train_teacher.output.metrics,
        students=attention_students(),
    output:
        pdf=figure_report("attention", "pdf", "Attention and attributions"),
        png=figure_report("attention", "png", "Attention and attributions"),
    log:
        f"{LOGS}/fig_attention.log",
    benchmark:
        f"{BENCH}/fig_attention.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 1
    params:
        methods=ATTENTION["methods"],
        student=attention_student(),
        run=ATTENTION["run"],
        examples=FIGURES["examples"],
        teacher_width=config["teacher"]["width"],
        student_width=STUDENTS["width"],
        student_normalize=STUDENTS["normalize"],
        code=code_fingerprint("fig_attention"),
    script:
        "../scripts/fig_attention.py"


rule fig_attributions:
    input:
        data=rules.prepare_data.output.data,
        teacher_model=rules.train_teacher.output.model,
        teacher_metrics=rules.train_teacher.output.metrics,
    output:
        pdf=figure_report("attributions", "pdf", "Attention and attributions"),
        png=figure_report("attributions", "png", "Attention and attributions"),
    log:
        f"{LOGS}/fig_attributions.log",
    benchmark:
        f"{BENCH}/fig_attributions.tsv"
    conda:
        "../../envs/train.yaml"
    threads: 1
    params:
        attributions=FIGURES["attributions"]["methods"],
        settings={
            a: precompute_params(config["precompute"], a, draws=False)
            for a in FIGURES["attributions"]["methods"]
        },
        plugins=attribution_plugins(FIGURES["attributions"]["methods"]),
        seed=FIGURES["attributions"]["seed"],
        examples=FIGURES["examples"],
        teacher_width=config["teacher"]["width"],
        code=code_fingerprint("fig_attributions"),
    script:
        "../scripts/fig_attributions.py"


rule fig_power:
    input:
        power=rules.power_table.output.power,
        runs=power_figure_runs(),
    output:
        pdf=figure_report("power", "pdf", "Power"),
        png=figure_report("power", "png", "Power"),
    log:
        f"{LOGS}/fig_power.log",
    benchmark:
        f"{BENCH}/fig_power.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        family=power_figure_family(),
        student=FIGURES["power"]["student"],
        max_diff=FIGURES["power"]["max_diff"],
        code=code_fingerprint("fig_power"),
    script:
        "../scripts/fig_power.py"


rule figures:
    input:
        figure_pdfs(),
