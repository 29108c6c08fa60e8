# Raw data -> results/{ds}/data.h5 (uint8 images, labels, classes, validation split).
rule download_cifar10:
    output:
        CIFAR_ARCHIVE,
    log:
        f"logs/download_cifar10.log",
    benchmark:
        f"{CIFAR['data_dir']}/download.benchmark.tsv"
    conda:
        "../../envs/train.yaml"
    resources:
        runtime=120,
    params:
        code=code_fingerprint("download_cifar10"),
    script:
        "../scripts/download_cifar10.py"


rule prepare_data:
    input:
        raw=raw_data_input,
    output:
        data=f"{RESULTS}/data.h5",
    log:
        f"{LOGS}/prepare_data.log",
    benchmark:
        f"{BENCH}/prepare_data.tsv"
    conda:
        "../../envs/train.yaml"
    params:
        dataset=prepare_params(config["dataset"]),
        code=code_fingerprint("prepare_data"),
    script:
        "../scripts/prepare_data.py"
