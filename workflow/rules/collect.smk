# Each experiment's runs -> one table, per-group summary and statistics; power and cost.


rule collect_runs:
    input:
        metrics=lambda wc: experiment_files(wc.experiment, "metrics.json"),
        teacher_metrics=rules.train_teacher.output.metrics,
    output:
        runs=report(
            f"{RESULTS}/tables/{{experiment}}/runs.csv",
            caption="../report/runs_table.rst",
            category="Tables",
            labels={"table": "runs ({experiment})"},
        ),
        method_means=f"{RESULTS}/tables/{{experiment}}/method_means.csv",
    log:
        f"{LOGS}/collect_runs_{{experiment}}.log",
    benchmark:
        f"{BENCH}/collect_runs_{{experiment}}.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        methods=lambda wc: EXPERIMENTS[wc.experiment].methods,
        code=code_fingerprint("collect_runs"),
    script:
        "../scripts/collect_runs.py"


rule run_stats:
    input:
        runs=rules.collect_runs.output.runs,
        runtime=lambda wc: experiment_files(wc.experiment, "runtime.json"),
    output:
        summary=report(
            f"{RESULTS}/stats/{{experiment}}/summary.csv",
            caption="../report/stats_summary.rst",
            category="Tables",
            labels={"table": "summary ({experiment})"},
        ),
        comparisons=report(
            f"{RESULTS}/stats/{{experiment}}/comparisons.csv",
            caption="../report/stats_comparisons.rst",
            category="Tables",
            labels={"table": "comparisons ({experiment})"},
        ),
        normality=f"{RESULTS}/stats/{{experiment}}/normality.csv",
        markdown=f"{RESULTS}/stats/{{experiment}}/stats.md",
    log:
        f"{LOGS}/run_stats_{{experiment}}.log",
    benchmark:
        f"{BENCH}/run_stats_{{experiment}}.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        experiment=lambda wc: wc.experiment,
        methods=lambda wc: EXPERIMENTS[wc.experiment].methods,
        stats=config["stats"],
        code=code_fingerprint("run_stats"),
    script:
        "../scripts/run_stats.py"


# docs/power.md: snakemake --cores 2 power
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
        families=tested_experiments(),
        stats=config["stats"],
        code=code_fingerprint("power_table"),
    script:
        "../scripts/power_table.py"


rule power:
    input:
        power_outputs(),
