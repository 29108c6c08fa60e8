"""Train one student: the StudentRun its params describe (method, drop, fraction, run, recipe).

Imports no torch itself: with runtime.warm_workers (device cpu) a warm worker process
trains it (igkd.training.worker), else this process does; the same function either way."""

import sys

from igkd.training.student_job import StudentJob, run_student_job
from igkd.training.worker import submit

job = StudentJob.from_snakemake(snakemake)
status = submit(job) if job.warm else None
sys.exit(run_student_job(job) if status is None else status)
