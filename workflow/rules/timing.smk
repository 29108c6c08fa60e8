# Model-only inference latency (a benchmark: timing.csv) and accuracy vs latency.
# Models are built from the architecture, so timing does not wait for training.


rule time_models:
    input:
        data=rules.prepare_data.output.data,
    output:
        table=f"{RESULTS}/timing.csv",
    log:
        f"{LOGS}/time_models.log",
    benchmark:
        f"{BENCH}/time_models.tsv"
    conda:
        "../../envs/train.yaml"
    threads: TIMING["threads"]
    resources:
        runtime=60,
        gpu=GPU_WHOLE,
    params:
        timing=TIMING,
        image_size=config["dataset"]["image_size"],
        teacher_width=config["teacher"]["width"],
        student_width=STUDENTS["width"],
        students=CAMPAIGN.students(),
        plugins=student_plugins(CAMPAIGN.students()),
        device=config["runtime"]["device"],
        channels_last=config["runtime"]["channels_last"],
        code=code_fingerprint("time_models"),
    script:
        "../scripts/time_models.py"


rule fig_latency:
    input:
        runs=f"{RESULTS}/tables/compression/runs.csv",
        timing=rules.time_models.output.table,
        teacher_metrics=rules.train_teacher.output.metrics,
    output:
        pdf=f"{RESULTS}/figures/latency.pdf",
        png=f"{RESULTS}/figures/latency.png",
    log:
        f"{LOGS}/fig_latency.log",
    benchmark:
        f"{BENCH}/fig_latency.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        methods=experiment_methods("compression"),
        alpha=config["stats"]["alpha"],
        code=code_fingerprint("fig_latency"),
    script:
        "../scripts/fig_latency.py"
