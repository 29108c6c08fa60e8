"""A student family in one file: a two-layer CNN sized by its channel count.

Config: `plugins: [tiny_student.py]` and a student id `tinycnn-channels16` in an
experiment's `students` (docs/extending.md).
"""

from torch import nn

from igkd import register


class TinyCNN(nn.Module):
    """conv-BN-ReLU at full resolution, a strided conv-BN-ReLU, pooling, one linear layer."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU())
        self.body = nn.Sequential(
            nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * channels),
            nn.ReLU(),
        )
        self.head = nn.Linear(2 * channels, num_classes)

    def forward(self, x):
        return self.head(self.body(self.stem(x)).mean((2, 3)))


# at=: attention transfer matches the stem's output (full resolution) with the teacher's
# feature block 2, which has the same spatial size (docs/extending.md lists the blocks).
@register.student("tinycnn", size="channels", at=("stem", 2), sizes=(1, 512))
def build_tiny_cnn(size: int, num_classes: int, width: float) -> nn.Module:
    """A two-layer CNN with `size` x width channels (the recipe's students.width)."""
    return TinyCNN(max(1, round(size * width)), num_classes)
