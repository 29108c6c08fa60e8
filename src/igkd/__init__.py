"""igkd: model compression by knowledge distillation with integrated gradients."""

__version__ = "0.1.0"
