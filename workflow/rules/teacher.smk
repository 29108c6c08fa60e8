# Teacher: trained with the paper's recipe or imported from a state dict.


rule train_teacher:
    input:
        data=rules.prepare_data.output.data,
        weights=lambda wc: (
            config["teacher"]["weights"]
            if config["teacher"]["source"] == "import"
            else []
        ),
    output:
        model=f"{RESULTS}/teacher/model.pt",
        metrics=f"{RESULTS}/teacher/metrics.json",
        history=f"{RESULTS}/teacher/history.csv",
    log:
        f"{LOGS}/train_teacher.log",
    benchmark:
        f"{BENCH}/train_teacher.tsv"
    conda:
        "../../envs/train.yaml"
    threads: THREADS["teacher"]
    resources:
        runtime=24 * 60,
        gpu=GPU_WHOLE,
    params:
        teacher=teacher_params(config["teacher"]),
        device=config["runtime"]["device"],
        precision=config["runtime"]["precision"],
        code=code_fingerprint("train_teacher"),
    script:
        "../scripts/train_teacher.py"
