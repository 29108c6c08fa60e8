# All runs -> one table, per-group summary and statistics, power and cost.


rule collect_runs:
    input:
        metrics=expand("{dir}/metrics.json", dir=student_dirs()),
        teacher_metrics=rules.train_teacher.output.metrics,
    output:
        runs=report(
            f"{RESULTS}/tables/runs.csv",
            caption="../report/runs_table.rst",
            category="Tables",
        ),
        method_means=f"{RESULTS}/tables/method_means.csv",
    log:
        f"{LOGS}/collect_runs.log",
    benchmark:
        f"{BENCH}/collect_runs.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        methods=STUDENTS["methods"],
        code=code_fingerprint("collect_runs"),
    script:
        "../scripts/collect_runs.py"


rule run_stats:
    input:
        runs=rules.collect_runs.output.runs,
        runtime=expand("{dir}/runtime.json", dir=student_dirs()),
    output:
        summary=report(
            f"{RESULTS}/stats/summary.csv",
            caption="../report/stats_summary.rst",
            category="Tables",
        ),
        comparisons=report(
            f"{RESULTS}/stats/comparisons.csv",
            caption="../report/stats_comparisons.rst",
            category="Tables",
        ),
        normality=f"{RESULTS}/stats/normality.csv",
        markdown=f"{RESULTS}/stats/stats.md",
    log:
        f"{LOGS}/run_stats.log",
    benchmark:
        f"{BENCH}/run_stats.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        methods=STUDENTS["methods"],
        stats=config["stats"],
        code=code_fingerprint("run_stats"),
    script:
        "../scripts/run_stats.py"


# README "How many runs settle it?": snakemake --cores 2 power
rule power_table:
    input:
        unpack(power_inputs),
    output:
        power=report(
            f"{RESULTS}/stats/power.csv",
            caption="../report/power_table.rst",
            category="Tables",
        ),
    log:
        f"{LOGS}/power_table.log",
    benchmark:
        f"{BENCH}/power_table.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        stats=config["stats"],
        code=code_fingerprint("power_table"),
    script:
        "../scripts/power_table.py"


rule power:
    input:
        rules.power_table.output.power,
        f"{RESULTS}/figures/power.pdf",
