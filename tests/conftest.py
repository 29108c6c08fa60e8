import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # fixtures_data helpers

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(autouse=True)
def _registry_restored(monkeypatch):
    """Whatever a test registers (plugins, igkd.register) is gone after it, and its
    plugins do not reach the next test's subprocesses (IGKD_PLUGINS)."""
    from igkd import plugins, registry
    from igkd.training import methods

    tables = (registry.ARCHITECTURES, registry.ATTRIBUTIONS, registry.LOSSES, methods.METHODS, plugins._LOADED)
    saved = [dict(table) for table in tables]
    monkeypatch.delenv(plugins.ENVIRONMENT, raising=False)
    yield
    for table, before in zip(tables, saved):
        table.clear()
        table.update(before)


@pytest.fixture
def workdir(repo, tmp_path):
    """A copy of the workflow (Snakefile, config.yaml, workflow/, envs/, profiles/) to run
    Snakemake in without touching the checkout."""
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(repo / name, tmp_path / name)
    for folder in ("workflow", "envs", "profiles"):
        shutil.copytree(repo / folder, tmp_path / folder)
    return tmp_path


@pytest.fixture
def tiny_splits():
    """Digits at 8x8: real images, tiny and fast."""
    from igkd.data.digits import load_digits_splits
    from igkd.data.store import with_val_split

    return with_val_split(load_digits_splits(8, 0.2, 0), 0.1, 0)


MEAN, STD = [0.3, 0.3, 0.3], [0.3, 0.3, 0.3]  # the input normalisation of trained_teacher


@pytest.fixture(scope="session")
def trained_teacher():
    """A width-0.25 teacher after 40 SGD steps on the 8x8 digits (inputs normalised by
    MEAN, STD): its logits depend on the image and its BatchNorm layers hold real running
    statistics (unlike at init)."""
    import torch

    from igkd.data.digits import load_digits_splits
    from igkd.models import build_teacher
    from igkd.training.augment import normalize

    splits = load_digits_splits(8, 0.2, 0)
    torch.manual_seed(1)
    model = build_teacher(width=0.25)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x = normalize(torch.from_numpy(splits.train_images).permute(0, 3, 1, 2).float() / 255, MEAN, STD)
    y = torch.as_tensor(splits.train_labels)
    for step in range(40):
        rows = torch.arange(step * 32, step * 32 + 64) % len(y)
        loss = torch.nn.functional.cross_entropy(model(x[rows]), y[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def smooth_copy(model):
    """`model` with every ReLU6 replaced by SiLU (same weights, BatchNorm statistics and
    layout). Tests that compare two computations of one attribution which round
    differently (BatchNorm folded or not, other batch sizes, captum or igkd) use it: at a
    ReLU6 kink a rounding difference flips a gradient, and which image it hits changes
    from CPU to CPU (seen: one image's IG map 20 % off on one CPU, not on another). A
    smooth network moves every result by rounding only, on any CPU."""
    import copy

    import torch

    model = copy.deepcopy(model)
    for module in list(model.modules()):
        for name, child in module.named_children():
            if isinstance(child, torch.nn.ReLU6):
                setattr(module, name, torch.nn.SiLU())
    return model


@pytest.fixture(scope="session")
def smooth_teacher(trained_teacher):
    """trained_teacher without kinks (smooth_copy)."""
    return smooth_copy(trained_teacher)
