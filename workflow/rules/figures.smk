# Each figure is a rule whose name is its target: snakemake --cores 2 fig_compression


rule fig_compression:
    input:
        runs=rules.collect_runs.output.runs,
        teacher=rules.train_teacher.output.metrics,
    output:
        pdf=f"{RESULTS}/figures/compression.pdf",
        png=f"{RESULTS}/figures/compression.png",
    log:
        f"{LOGS}/fig_compression.log",
    benchmark:
        f"{BENCH}/fig_compression.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        methods=STUDENTS["methods"],
        code=fingerprint("figures", "stats", "plots/compression"),
    script:
        "../scripts/fig_compression.py"
