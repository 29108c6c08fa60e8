# All runs -> one table, per-group summary and statistics.


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
        code=code_fingerprint("run_stats"),
    script:
        "../scripts/run_stats.py"
