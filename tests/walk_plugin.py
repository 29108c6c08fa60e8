"""A plugin for the key walk (tests/keywalk.py): a loss term and an attribution that no
method or precompute of the walk's config uses, so their config keys can change there."""

from igkd import register


@register.loss("walk_term")
def walk_term(inputs):
    return inputs.logits.mean() * 0


@register.attribution("walk_map")
def walk_map(model, x, target, settings):
    return x, x.new_full((len(x),), float("nan"))
