# Evaluation-only accuracy of teacher and students on an external image folder (the
# paper's ImageNet subset). Not in the DAG when external_eval.root is null: asked for by
# name then, its rules stop with the one line naming that key.

if EXTERNAL["root"]:

    if EXTERNAL["standin_rotation"] is not None:

        rule export_standin:
            input:
                data=rules.prepare_data.output.data,
            output:
                root=directory(EXTERNAL["root"]),
            log:
                f"{LOGS}/export_standin.log",
            benchmark:
                f"{BENCH}/export_standin.tsv"
            conda:
                "../../envs/train.yaml"
            params:
                rotation=EXTERNAL["standin_rotation"],
                description=EXTERNAL["description"],
                code=code_fingerprint("export_standin"),
            script:
                "../scripts/export_standin.py"

    rule evaluate_external:
        input:
            data=rules.prepare_data.output.data,
            root=EXTERNAL["root"],
            class_map=external_class_map(),
            teacher_model=rules.train_teacher.output.model,
            teacher_metrics=rules.train_teacher.output.metrics,
            models=experiment_files(EXTERNAL["experiment"], "model.pt"),
            metrics=experiment_files(EXTERNAL["experiment"], "metrics.json"),
        output:
            table=f"{RESULTS}/external/{EXTERNAL['name']}.csv",
            per_class=f"{RESULTS}/external/{EXTERNAL['name']}_per_class.csv",
        log:
            f"{LOGS}/evaluate_external.log",
        benchmark:
            f"{BENCH}/evaluate_external.tsv"
        conda:
            "../../envs/train.yaml"
        threads: THREADS["student"]
        resources:
            runtime=60,
            gpu=GPU_ONE_SLOT,
        params:
            description=EXTERNAL["description"],
            image_size=config["dataset"]["image_size"],
            teacher_width=config["teacher"]["width"],
            student_width=STUDENTS["width"],
            student_norm=STUDENTS["normalize"],
            device=config["runtime"]["device"],
            code=code_fingerprint("evaluate_external"),
        script:
            "../scripts/evaluate_external.py"

    rule fig_imagenet:
        input:
            table=rules.evaluate_external.output.table,
        output:
            pdf=f"{RESULTS}/figures/{EXTERNAL['name']}.pdf",
            png=f"{RESULTS}/figures/{EXTERNAL['name']}.png",
        log:
            f"{LOGS}/fig_imagenet.log",
        benchmark:
            f"{BENCH}/fig_imagenet.tsv"
        conda:
            "../../envs/analysis.yaml"
        params:
            methods=experiment_methods(EXTERNAL["experiment"]),
            title=EXTERNAL["description"],
            alpha=config["stats"]["alpha"],
            code=code_fingerprint("fig_imagenet"),
        script:
            "../scripts/fig_imagenet.py"

else:

    rule evaluate_external:
        input:
            external_root_required,

    rule fig_imagenet:
        input:
            external_root_required,
