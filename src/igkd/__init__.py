"""igkd: model compression by knowledge distillation with integrated gradients."""

import importlib

__version__ = "0.1.0"
__all__ = ["load_student"]


def __getattr__(name: str):
    """`igkd.load_student` (igkd.training.loaded), imported on first use: `import igkd`
    (the command line's --version, every Snakemake job) stays free of torch. Through
    importlib, not an import statement: igkd.provenance reads import statements, and every
    stage imports this package, so a statement here would tie all their fingerprints to the
    student's training modules."""
    if name == "load_student":
        return importlib.import_module("igkd.training.loaded").load_student
    raise AttributeError(f"module 'igkd' has no attribute {name!r}")
