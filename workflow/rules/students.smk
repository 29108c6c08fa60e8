# One student per (method, student id, training fraction, Monte Carlo run), shared by every
# experiment that asks for it (igkd.experiments.StudentRun).


rule distill_student:
    input:
        data=rules.prepare_data.output.data,
        teacher_model=rules.train_teacher.output.model,
        teacher_metrics=rules.train_teacher.output.metrics,
        precompute=student_precompute,
    output:
        model=f"{RESULTS}/students/{{method}}/{{student}}/f{{fraction}}/run{{run}}/model.pt",
        metrics=f"{RESULTS}/students/{{method}}/{{student}}/f{{fraction}}/run{{run}}/metrics.json",
        history=f"{RESULTS}/students/{{method}}/{{student}}/f{{fraction}}/run{{run}}/history.csv",
        subsample=f"{RESULTS}/students/{{method}}/{{student}}/f{{fraction}}/run{{run}}/subsample.npz",
        runtime=f"{RESULTS}/students/{{method}}/{{student}}/f{{fraction}}/run{{run}}/runtime.json",
    log:
        f"{LOGS}/students/{{method}}_{{student}}_f{{fraction}}_run{{run}}.log",
    benchmark:
        f"{BENCH}/students/{{method}}_{{student}}_f{{fraction}}_run{{run}}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: THREADS["student"]
    resources:
        runtime=6 * 60,
        gpu=GPU_ONE_SLOT,
    params:
        run=lambda wc: student_run(wc).params(),
        teacher_width=config["teacher"]["width"],
        device=config["runtime"]["device"],
        precision=config["runtime"]["precision"],
        code=code_fingerprint("distill_student"),
    script:
        "../scripts/distill_student.py"
