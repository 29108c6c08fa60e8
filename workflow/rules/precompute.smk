# Teacher logits + attribution maps for every training image, in dataset order.


rule precompute_attributions:
    input:
        data=rules.prepare_data.output.data,
        teacher_model=rules.train_teacher.output.model,
        teacher_metrics=rules.train_teacher.output.metrics,
    output:
        h5=f"{RESULTS}/precompute/{{attribution}}.h5",
    log:
        f"{LOGS}/precompute_{{attribution}}.log",
    benchmark:
        f"{BENCH}/precompute_{{attribution}}.tsv"
    priority: FIRST_AFTER_TEACHER
    conda:
        "../../envs/train.yaml"
    threads: THREADS["precompute"]
    resources:
        runtime=12 * 60,
        gpu=GPU_WHOLE,
    params:
        attribution=lambda wc: precompute_params(config["precompute"], wc.attribution),
        teacher_width=config["teacher"]["width"],
        code=code_fingerprint("precompute_attributions"),
    script:
        "../scripts/precompute_attributions.py"
