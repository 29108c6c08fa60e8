# igkd against the paper's published numbers (docs/experiments.md):
# snakemake --cores 2 paper. Only CIFAR-10 at the paper's settings is compared; any other
# run gets the one line saying why (igkd.analysis.paper_numbers.comparability).


rule compare_paper:
    input:
        unpack(paper_inputs),
    output:
        comparison=f"{RESULTS}/paper/comparison.csv",
        claims=f"{RESULTS}/paper/claims.csv",
        markdown=f"{RESULTS}/paper/comparison.md",
        pdf=figure_report("paper_comparison", "pdf", "Paper comparison"),
        png=figure_report("paper_comparison", "png", "Paper comparison"),
    log:
        f"{LOGS}/compare_paper.log",
    benchmark:
        f"{BENCH}/compare_paper.tsv"
    conda:
        "../../envs/analysis.yaml"
    params:
        comparable=PAPER.param(),
        numbers=PAPER_NUMBERS,
        replication=config["replication"] if PAPER.comparable else None,
        code=code_fingerprint("compare_paper"),
    script:
        "../scripts/compare_paper.py"


rule paper:
    input:
        rules.compare_paper.output,
