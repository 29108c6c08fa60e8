# One student per (method, drop, Monte Carlo run).


rule distill_student:
    input:
        data=rules.prepare_data.output.data,
        teacher_model=rules.train_teacher.output.model,
        teacher_metrics=rules.train_teacher.output.metrics,
        precompute=student_precompute,
    output:
        model=f"{RESULTS}/students/{{method}}/drop{{drop}}/run{{run}}/model.pt",
        metrics=f"{RESULTS}/students/{{method}}/drop{{drop}}/run{{run}}/metrics.json",
        history=f"{RESULTS}/students/{{method}}/drop{{drop}}/run{{run}}/history.csv",
        subsample=f"{RESULTS}/students/{{method}}/drop{{drop}}/run{{run}}/subsample.npy",
        runtime=f"{RESULTS}/students/{{method}}/drop{{drop}}/run{{run}}/runtime.json",
    log:
        f"{LOGS}/students/{{method}}_drop{{drop}}_run{{run}}.log",
    benchmark:
        f"{BENCH}/students/{{method}}_drop{{drop}}_run{{run}}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: THREADS["student"]
    resources:
        runtime=6 * 60,
        gpu=GPU_ONE_SLOT,
    params:
        students=STUDENT_RUN_SETTINGS,
        teacher_width=config["teacher"]["width"],
        device=config["runtime"]["device"],
        channels_last=config["runtime"]["channels_last"],
        code=code_fingerprint("distill_student"),
    script:
        "../scripts/distill_student.py"
