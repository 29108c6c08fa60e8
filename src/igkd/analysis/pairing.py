"""Which runs of two methods are pairs: the design fact both the tests and the power analysis rest on.

Run r of every method shares its initialisation seed and training subsample, so two
methods' runs are paired when they ran on exactly the same (seed, subsample_sha) pairs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PAIR_KEYS = ("seed", "subsample_sha")


def pair_keys(group: pd.DataFrame) -> list[tuple] | None:
    """(seed, subsample_sha) of each run, or None if some key is missing or repeated."""
    keys = group[list(PAIR_KEYS)]
    if keys.isna().any().any():
        return None
    tuples = list(keys.itertuples(index=False, name=None))
    return tuples if len(set(tuples)) == len(tuples) else None


def aligned_samples(a: pd.DataFrame, b: pd.DataFrame, value: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """`value` of method runs `a` and baseline runs `b`, and whether they are paired: both
    ran on exactly the same (seed, subsample_sha) pairs, each once. Paired baseline runs
    are reordered to the method's, so x[i] - y[i] is one pair's difference."""
    x = a[value].to_numpy(float)
    y = b[value].to_numpy(float)
    if not all(k in a.columns and k in b.columns for k in PAIR_KEYS):
        return x, y, False
    ka, kb = pair_keys(a), pair_keys(b)
    paired = ka is not None and kb is not None and set(ka) == set(kb)
    if paired:
        order = {k: i for i, k in enumerate(kb)}
        y = y[[order[k] for k in ka]]
    return x, y, paired
