# Hyper-parameter sweeps scored on the validation split: one student per grid point and run.
# sweeps.grouping "point": one job per point (clusters; a new grid value trains only its
# points). "sweep": one job per sweep trains all its points, paying the ~4 s torch import
# and the data loading once instead of once per point (the demo's small grids).


rule train_sweep_point:
    input:
        data=rules.prepare_data.output.data,
        teacher_model=rules.train_teacher.output.model,
        teacher_metrics=rules.train_teacher.output.metrics,
        precompute=lambda wc: sweep_precompute(wc.sweep),
    output:
        metrics=f"{RESULTS}/sweeps/{{sweep}}/{{point}}/run{{run}}/metrics.json",
        history=f"{RESULTS}/sweeps/{{sweep}}/{{point}}/run{{run}}/history.csv",
    log:
        f"{LOGS}/sweeps/{{sweep}}_{{point}}_run{{run}}.log",
    benchmark:
        f"{BENCH}/sweeps/{{sweep}}_{{point}}_run{{run}}.tsv"
    wildcard_constraints:
        sweep="|".join(SWEEP_NAMES),
        point="[A-Za-z0-9.e+_-]+",
    conda:
        "../../envs/train.yaml"
    threads: THREADS["student"]
    resources:
        runtime=6 * 60,
        gpu=GPU_ONE_SLOT,
    params:
        sweep=lambda wc: wc.sweep,
        method=lambda wc: sweep_method(wc.sweep),
        points=sweep_point,
        students=sweep_students,
        sweeps=sweep_settings,
        teacher_width=config["teacher"]["width"],
        device=config["runtime"]["device"],
        precision=config["runtime"]["precision"],
        code=code_fingerprint("train_sweep"),
    script:
        "../scripts/train_sweep.py"


if SWEEPS["grouping"] == "sweep":

    ruleorder: train_sweep_kd > train_sweep_point
    ruleorder: train_sweep_overlay_p > train_sweep_point

    use rule train_sweep_point as train_sweep_kd with:
        input:  # replaces the point rule's inputs as a whole
            data=rules.prepare_data.output.data,
            teacher_model=rules.train_teacher.output.model,
            teacher_metrics=rules.train_teacher.output.metrics,
            precompute=sweep_precompute("kd"),
        output:
            metrics=sweep_files("kd", "metrics.json"),
            history=sweep_files("kd", "history.csv"),
        log:
            f"{LOGS}/sweeps/kd.log",
        benchmark:
            f"{BENCH}/sweeps/kd.tsv"
        params:  # merged over the point rule's params
            sweep="kd",
            method=sweep_method("kd"),
            points=sweep_all_points("kd"),
            students=point_settings(CAMPAIGN.recipe, SWEEPS, "kd")[0],
            sweeps=point_settings(CAMPAIGN.recipe, SWEEPS, "kd")[1],

    use rule train_sweep_point as train_sweep_overlay_p with:
        input:  # replaces the point rule's inputs as a whole
            data=rules.prepare_data.output.data,
            teacher_model=rules.train_teacher.output.model,
            teacher_metrics=rules.train_teacher.output.metrics,
            precompute=sweep_precompute("overlay_p"),
        output:
            metrics=sweep_files("overlay_p", "metrics.json"),
            history=sweep_files("overlay_p", "history.csv"),
        log:
            f"{LOGS}/sweeps/overlay_p.log",
        benchmark:
            f"{BENCH}/sweeps/overlay_p.tsv"
        params:  # merged over the point rule's params
            sweep="overlay_p",
            method=sweep_method("overlay_p"),
            points=sweep_all_points("overlay_p"),
            students=point_settings(CAMPAIGN.recipe, SWEEPS, "overlay_p")[0],
            sweeps=point_settings(CAMPAIGN.recipe, SWEEPS, "overlay_p")[1],


rule collect_sweep:
    input:
        metrics=sweep_metrics,
    output:
        table=report(
            f"{RESULTS}/sweeps/{{sweep}}.csv",
            caption="../report/sweep_table.rst",
            category="Tables",
            labels={"table": "sweep {sweep}"},
        ),
    log:
        f"{LOGS}/collect_sweep_{{sweep}}.log",
    benchmark:
        f"{BENCH}/collect_sweep_{{sweep}}.tsv"
    wildcard_constraints:
        sweep="|".join(SWEEP_NAMES),
    conda:
        "../../envs/analysis.yaml"
    params:
        allow_mixed_conditions=config["stats"]["allow_mixed_conditions"],
        code=code_fingerprint("collect_sweep"),
    script:
        "../scripts/collect_sweep.py"
