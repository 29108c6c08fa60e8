"""`igkd plan`: what a run will cost before it starts.

A run of the paper's protocol is hundreds of trainings; this package says how long it
takes on the given cores or GPUs and how much disk it fills, from a short calibration on
the device it will use. One job per module:

- runspec: the run's arguments (config files, profile, cores, GPUs) resolved as Snakemake would
- dryrun, parse, jobs: `snakemake -n` -> the pending jobs and the DAG between them
- dataset: split sizes (data.h5, or the dataset's known sizes)
- device, cache, calibration, measure, keys: the calibration and its cache
- cost, disk: seconds and bytes per job (assumed numbers: assumptions)
- schedule: wall time on the given resources (a list scheduler)
- owners, summary: jobs -> experiments -> rows
- build, report, slurm, command: the plan end to end, its output, SLURM runtimes, the CLI

Torch is imported only to measure or to resolve the device.
"""
