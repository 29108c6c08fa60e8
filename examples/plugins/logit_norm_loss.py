"""A loss term and a method that adds it, in one file.

`logit_norm` penalises the mean squared student logit (a regulariser that keeps the
logits small, which softens the student's own predictions). Config:
`plugins: [logit_norm_loss.py]`, the method `KD_LN` in an experiment's methods, and
optionally its weight `students: {losses: {logit_norm: 0.05}}` (docs/extending.md).
"""

from igkd import register


@register.loss("logit_norm", weight=0.01)
def logit_norm(inputs):
    """Mean squared logit of the batch (inputs: igkd.training.distiller.LossInputs)."""
    return inputs.logits.pow(2).mean()


# KD's soft targets and cross-entropy, plus weight x logit_norm in the loss dict.
register.method("KD_LN", kd=True, losses=("logit_norm",))
