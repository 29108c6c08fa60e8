"""Every number the plan assumes rather than measures, in one place.

The calibration measures what dominates a run (training steps, evaluation and IG
throughput, job start-up, model file sizes). What is left is either small or unknowable
before the run; each such guess is a field here with where it comes from, so a reader
can check it and a later comparison with a finished run changes one line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

KB = 1000
MB = 1000 * KB


@dataclass(frozen=True)
class TimeAssumptions:
    """Seconds and counts the cost model uses where nothing was measured."""

    # Snakemake's own work per job around the script: pickling the job, writing the script
    # preamble, checking outputs, touching metadata. Not in the measured import time.
    job_overhead_s: float = 0.5
    # Work of a small job (collect, stats, figures, tables) after its imports: it reads a few
    # CSV/JSON files and writes a table or a figure. The tiny workflow test's benchmark files
    # show 0.4-2.4 s per such job in total, start-up included.
    small_job_s: float = 1.0
    # Loading data.h5, the teacher and a precompute file, and writing the outputs, per
    # training job (seconds); tens of MB on a local disk.
    training_io_s: float = 1.0
    # Per epoch: the atomic checkpoint (model + optimiser state, fsync) every training writes.
    checkpoint_s_per_epoch: float = 0.05
    # prepare_data after start-up: decoding/resizing the raw data set (cifar10: 6 pickled
    # batches; digits: scikit-learn's bundled array; imagefolder: per image).
    prepare_s: dict = field(default_factory=lambda: {"cifar10": 15.0, "digits": 2.0, "imagefolder": 30.0})
    # download_cifar10: 170 MB at an assumed 10 MB/s, plus the md5 check.
    download_s: float = 20.0
    # export_standin after start-up: writes the test split as PNG files.
    export_standin_s: float = 5.0
    # Converged IG (precompute.ig.tolerance set) refines each image until its completeness
    # error is small; the mean points per image is known only after the run. Without a
    # finished precompute file to read it from (attr steps_mean), assume this multiple of
    # precompute.ig.steps, capped at max_steps: the demo measured 44.8 mean points from 9
    # starting points (docs/demo.md), a factor of 5.0.
    refined_steps_factor: float = 5.0
    # Attribution points per image for attributions without steps/samples settings
    # (saliency: one gradient; random: noise maps, no gradient at all).
    points_per_image: dict = field(default_factory=lambda: {"saliency": 1, "random": 0})
    # time_models: torch.utils.benchmark's adaptive_autorange runs at least min_run_time and
    # at most max_run_time per model and batch size; assume this multiple of min_run_time
    # (noisy machines run longer), then clamp to [min_run_time, max_run_time].
    timing_run_factor: float = 2.0
    # evaluate_external without a folder to count: the paper's 32x32 ImageNet subset, 98 WNIDs
    # x 50 validation images.
    external_images: int = 4900
    # Rules whose script imports torch (envs/train.yaml in workflow/rules): their start-up is
    # the measured training import, every other rule's the analysis import.
    torch_rules: frozenset = frozenset(
        {
            "download_cifar10",
            "prepare_data",
            "train_teacher",
            "precompute_attributions",
            "precompute_reference_defect",
            "distill_student",
            "train_sweep_point",
            "train_sweep_kd",
            "train_sweep_overlay_p",
            "time_models",
            "export_standin",
            "evaluate_external",
            "fig_ig_overlay",
            "fig_ig_power",
            "fig_attention",
            "fig_attributions",
        }
    )
    # On a GPU run: rules that hold one GPU slot (runtime.students_per_gpu per GPU) and rules
    # that hold a whole GPU, as workflow/rules/common.smk declares them (GPU_ONE_SLOT, GPU_WHOLE).
    one_slot_rules: frozenset = frozenset(
        {"distill_student", "train_sweep_point", "train_sweep_kd", "train_sweep_overlay_p", "evaluate_external"}
    )
    whole_gpu_rules: frozenset = frozenset(
        {"train_teacher", "precompute_attributions", "precompute_reference_defect", "time_models"}
    )


@dataclass(frozen=True)
class DiskAssumptions:
    """Bytes per output item that the calibration does not measure (model files it does)."""

    history_header_bytes: int = 80  # history.csv: column names
    history_row_bytes: int = 150  # one row per epoch (every epoch, not only evaluated ones): lr, losses, accuracies
    metrics_json_bytes: int = 1500  # metrics.json of a student or the teacher (identity, scores, environment)
    runtime_json_bytes: int = 100  # runtime.json: started, ended, seconds
    # subsample.npz: zip headers and the n_rows/sha entries around the packed mask (816 measured)
    npz_overhead_bytes: int = 820
    # HDF5 files beyond their arrays (superblock, chunk index, attributes), as measured on the
    # tiny workflow test's files: ig.h5 503,344 bytes for 448,344 of arrays, data.h5 371,176 for 360,552
    precompute_overhead_bytes: int = 56 * KB  # chunked datasets and the provenance attributes
    data_h5_overhead_bytes: int = 12 * KB
    precompute_row_floats: int = 4  # per row besides logits and map: gain, delta, abs_delta, rel_delta (float32)
    refined_row_bytes: int = 9  # converged IG adds steps (i4), initial_rel_delta (f4), above_tolerance (u1)
    label_bytes: int = 8  # data.h5 stores labels and val_index as int64
    figure_pdf_bytes: int = 25 * KB  # one figure's PDF: 16-40 KB in the tiny workflow test's results
    figure_png_bytes: int = 55 * KB  # its PNG: 30-83 KB there
    png_overhead_bytes: int = 200  # export_standin: a small PNG's headers around its (at most raw-sized) pixels
    table_bytes: int = 20 * KB  # one CSV / markdown table or stats file
    log_bytes: int = 2 * KB  # one job's log
    benchmark_bytes: int = 140  # one job's Snakemake benchmark TSV
    timing_row_bytes: int = 200  # timing.csv: one model at one batch size
    sweep_metrics_bytes: int = 600  # one sweep point's metrics.json
    cifar10_archive_bytes: int = 170_498_071  # cifar-10-python.tar.gz


@dataclass(frozen=True)
class SlurmAssumptions:
    """How `--slurm-runtimes` turns an estimate into a SLURM time limit."""

    safety_factor: float = 2.0  # the longest job of a rule x this: GPUs and nodes differ, jobs share nodes
    margin_min: float = 10.0  # plus minutes for queueing the step, staging, start-up on a busy node
    round_to_min: int = 5  # rounded up to a multiple of this many minutes
    # mem_mb: the largest job's estimate (igkd.plan.memory) x this + the margin, rounded up
    mem_safety_factor: float = 1.5  # allocator fragmentation, pinned-memory pools, page cache charged to the job
    mem_margin_mb: int = 1000  # the job's own Snakemake and srun step
    mem_round_mb: int = 500


@dataclass(frozen=True)
class Assumptions:
    time: TimeAssumptions = field(default_factory=TimeAssumptions)
    disk: DiskAssumptions = field(default_factory=DiskAssumptions)
    slurm: SlurmAssumptions = field(default_factory=SlurmAssumptions)


ASSUMPTIONS = Assumptions()
