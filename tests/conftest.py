import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # fixtures_data helpers

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture
def tiny_splits():
    """Digits at 8x8: real images, tiny and fast."""
    from igkd.data.digits import load_digits_splits
    from igkd.data.store import with_val_split

    return with_val_split(load_digits_splits(8, 0.2, 0), 0.1, 0)
